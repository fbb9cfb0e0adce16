"""NegGrad+: descend on the retain set while ascending on the forget set, batch by batch.

Definition (`40-methods.md`): every step pairs a retain mini-batch B_r with a forget mini-batch
B_f and minimises
    L = β · CE(B_r) − (1 − β) · CE(B_f),        β = 0.99 by default.
An epoch is one pass over D_r; forget batches cycle over D_f (a new permutation each time D_f is
exhausted), so every retain step sees a forget batch. Both batches run through the model in
training mode, the retain batch first (BatchNorm statistics are threaded through both).

Source: Kurmanji et al., "Towards Unbounded Machine Unlearning" (SCRUB), NeurIPS 2023, which
introduced NegGrad+; used as a localizable baseline by DEL (Torkzadehmahani et al., arXiv
2412.02432). Some papers call this update "NegGrad".

Data order: retain permutation of epoch e from `fold_in(k_r, e)`, forget permutation of cycle c
from `fold_in(k_f, c)`, with (k_r, k_f) split from the model's key; the last partial batch of
each pass is dropped. Forget batches larger than |D_f| are clipped to |D_f|.

Options of the public codes: `forget_cycle="epoch"` replays one forget permutation per epoch
(DEL's `zip(retain_dl, itertools.cycle(forget_dl))`: the cached batches of the first pass repeat
within the epoch; a new permutation each epoch), instead of reshuffling whenever D_f is
exhausted (`reshuffle`, default); `l2` = c adds (c/2)·‖θ − θ*‖² to the retain term,
L = β·(CE(B_r) + (c/2)‖θ − θ*‖²) − (1 − β)·CE(B_f) (SCRUB's small-scale NegGrad, with c its
weight_decay); `train_mode=False` runs both batches in inference mode (BatchNorm on running
statistics, none updated; SCRUB's small-scale `model.eval()`). `paired_descent_ascent` is the
loop, shared with `ga` (DEL's GA: β = 0, |D_r|/B steps per epoch) and `neggrad` (SCRUB's form).

Defaults: β = 0.99 (paper), SGD lr 0.01, momentum 0.9, weight decay 5e-4, cosine, 3 epochs, retain
batch 64, forget batch 32. With β = 0.99 the ascent term has 1 % of the weight: on a forget set
that the model generalises to (e.g. 10 % IID of digits, where the retrained oracle still gets ~98 %
forget accuracy) forget accuracy stays at 100 % (lr up to 0.1 or β down to 0.8 change nothing);
β ≈ 0.2 lowers it to ~0.9-0.95 with retain ~0.97-1.0. β is passed to the compiled step as a value,
so sweeping it does not recompile; a `base.PerModel` β (and learning rate) gives every model of a
stacked state its own value (VECTORIZED: many tuning candidates in one program).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from unlearn_jax.methods import base, common
from unlearn_jax.train import (cross_entropy, epoch_order, over_models, replicate,
                               resolve_model_axis)

USES_FORGET = True
VECTORIZED = ("learning_rate", "beta")
DEFAULTS = dict(epochs=3, batch_size=64, forget_batch_size=32, beta=0.99, learning_rate=0.01,
                momentum=0.9, weight_decay=5e-4, schedule="cosine", final_lr_fraction=0.0,
                forget_cycle="reshuffle", l2=0.0, train_mode=True)
FORGET_CYCLES = ("reshuffle", "epoch")


def paired_step(state, batch_r, batch_f, beta, l2=0.0, anchor=None, train_mode: bool = True):
  """One update of β·(CE(batch_r) + (l2/2)·‖θ − anchor‖²) − (1−β)·CE(batch_f)."""

  def loss_fn(params):
    logits_r, ms = state.apply_fn(params, state.model_state, batch_r["x"], train_mode)
    logits_f, ms = state.apply_fn(params, ms, batch_f["x"], train_mode)
    loss_r, loss_f = cross_entropy(logits_r, batch_r["y"]), cross_entropy(logits_f, batch_f["y"])
    if anchor is not None:
      sq = sum(jnp.sum(jnp.square(p - a)) for p, a in zip(jax.tree_util.tree_leaves(params),
                                                          jax.tree_util.tree_leaves(anchor)))
      loss_r = loss_r + 0.5 * l2 * sq
    return beta * loss_r - (1.0 - beta) * loss_f, (ms, loss_r, loss_f)

  (loss, (ms, loss_r, loss_f)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if not train_mode:
    ms = state.model_state
  return (state.replace(step=state.step + 1, params=params, model_state=ms, opt_state=opt_state),
          {"loss": loss, "retain_loss": loss_r, "forget_loss": loss_f})


@functools.lru_cache(maxsize=None)
def _compiled_paired_step(batch_r: int, batch_f: int, stacked: bool, mesh, model_axis: str,
                          anchored: bool = False, train_mode: bool = True, beta_axis=None):
  def one(state, batch_r, batch_f, beta, l2, anchor):
    return paired_step(state, batch_r, batch_f, beta, l2, anchor if anchored else None,
                       train_mode)

  step = (over_models(one, model_axis, in_axes=(0, 0, 0, beta_axis, None, 0)) if stacked
          else one)

  def gather(x, y, perm, i, b):
    idx = jax.lax.dynamic_slice_in_dim(perm, i * b, b, axis=-1)
    return common.constrain_batch({"x": x[idx], "y": y[idx]}, mesh, stacked)

  def run(state, rx, ry, fx, fy, rperm, fperm, i, j, beta, l2, anchor):
    return step(state, gather(rx, ry, rperm, i, batch_r), gather(fx, fy, fperm, j, batch_f), beta,
                l2, anchor)

  return jax.jit(run, donate_argnums=(0,))


def check_paired_options(name: str, cfg) -> None:
  """`forget_cycle`, `l2` and `train_mode` of the paired loop."""
  base.require(name, cfg.get("forget_cycle", "reshuffle") in FORGET_CYCLES,
               f"forget_cycle must be one of {', '.join(FORGET_CYCLES)}, got "
               f"{cfg.get('forget_cycle')!r}")
  l2 = cfg.get("l2", 0.0)
  base.require(name, common.is_real(l2) and l2 >= 0, f"l2 must be >= 0, got {l2!r}")
  base.require(name, isinstance(cfg.get("train_mode", True), bool),
               f"train_mode must be true or false, got {cfg.get('train_mode')!r}")


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("neggrad_plus", cfg, batch_keys=("batch_size", "forget_batch_size"))
  beta = cfg["beta"]
  base.require("neggrad_plus", common.is_real(beta) and 0 <= beta <= 1,
               f"beta must be in [0, 1], got {beta!r}")
  check_paired_options("neggrad_plus", cfg)
  if data is not None:
    common.check_forget("neggrad_plus", data)
    common.check_batch("neggrad_plus", "batch_size", "retain", cfg["batch_size"],
                       data.num_retain)


def paired_descent_ascent(state, data: base.UnlearnData, cfg, key, mask=None, *, beta: float,
                          retain_batch_size: int, forget_batch_size: int,
                          timer: base.Timer) -> base.UnlearnResult:
  """Epochs of |D_r|/B_r steps, each pairing a retain and a forget batch (module docstring).

  cfg: the SGD keys, `epochs` and optionally `forget_cycle`, `l2`, `train_mode`."""
  base.check_split(data, state)
  n_f, n_r = data.num_forget, data.num_retain
  stacked = base.is_stacked(state)
  b_r, b_f = int(retain_batch_size), min(int(forget_batch_size), n_f)
  steps = base.steps_per_epoch(n_r, b_r, data)
  f_steps = base.steps_per_epoch(n_f, b_f, data)
  tx = base.optimizer(cfg, cfg["epochs"] * steps, mask)
  state = base.with_optimizer(state, tx, mask)
  retain_key, forget_key = common.split_keys(key, stacked)
  put = lambda a, dtype=None: replicate(jnp.asarray(a, dtype), data.mesh)
  rx, ry = put(data.retain_x), put(data.retain_y, jnp.int32)
  fx, fy = put(data.forget_x), put(data.forget_y, jnp.int32)
  l2 = float(cfg.get("l2", 0.0))
  train_mode = bool(cfg.get("train_mode", True))
  beta_arr, per_model = base.per_model_values(beta, base.num_models(state))
  step = _compiled_paired_step(b_r, b_f, stacked, data.mesh, resolve_model_axis(data.model_axis),
                               l2 > 0, train_mode, 0 if per_model else None)
  anchor = common.fresh_copy(state).params if l2 > 0 else None  # θ*
  beta_arr, l2_arr = jnp.asarray(beta_arr, jnp.float32), jnp.asarray(l2, jnp.float32)
  replay = cfg.get("forget_cycle", "reshuffle") == "epoch"
  state = replicate(common.fresh_copy(state), data.mesh)  # steps donate
  t = 0
  for epoch in range(cfg["epochs"]):
    rperm = epoch_order(retain_key, epoch, n=n_r, stacked=stacked, subsets=data.retain_index)
    for i in range(steps):
      if replay:
        cycle, j = epoch, i % f_steps
        new_perm = i == 0
      else:
        cycle, j = divmod(t, f_steps)
        new_perm = j == 0
      if new_perm:
        fperm = epoch_order(forget_key, cycle, n=n_f, stacked=stacked, subsets=data.forget_index)
      state, _ = step(state, rx, ry, fx, fy, rperm, fperm, i, j, beta_arr, l2_arr, anchor)
      t += 1
  return base.result(state, timer, example_gradients=cfg["epochs"] * steps * (b_r + b_f),
                     epochs=cfg["epochs"], info={"forget_batch_size": b_f,
                                                 "steps_per_epoch": steps})


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  with base.Timer() as timer:
    return paired_descent_ascent(state, data, cfg, key, mask, beta=cfg["beta"],
                                 retain_batch_size=cfg["batch_size"],
                                 forget_batch_size=cfg["forget_batch_size"], timer=timer)
