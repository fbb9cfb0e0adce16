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
from unlearn_jax.train import (cross_entropy, epoch_permutations, over_models, replicate,
                               resolve_model_axis)

USES_FORGET = True
VECTORIZED = ("learning_rate", "beta")
DEFAULTS = dict(epochs=3, batch_size=64, forget_batch_size=32, beta=0.99, learning_rate=0.01,
                momentum=0.9, weight_decay=5e-4, schedule="cosine", final_lr_fraction=0.0)


def paired_step(state, batch_r, batch_f, beta):
  """One NegGrad+ update: β·CE(batch_r) − (1−β)·CE(batch_f)."""

  def loss_fn(params):
    logits_r, ms = state.apply_fn(params, state.model_state, batch_r["x"], True)
    logits_f, ms = state.apply_fn(params, ms, batch_f["x"], True)
    loss_r, loss_f = cross_entropy(logits_r, batch_r["y"]), cross_entropy(logits_f, batch_f["y"])
    return beta * loss_r - (1.0 - beta) * loss_f, (ms, loss_r, loss_f)

  (loss, (ms, loss_r, loss_f)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return (state.replace(step=state.step + 1, params=params, model_state=ms, opt_state=opt_state),
          {"loss": loss, "retain_loss": loss_r, "forget_loss": loss_f})


@functools.lru_cache(maxsize=None)
def _compiled_paired_step(batch_r: int, batch_f: int, stacked: bool, mesh, model_axis: str,
                          beta_axis=None):
  step = (over_models(paired_step, model_axis, in_axes=(0, 0, 0, beta_axis)) if stacked
          else paired_step)

  def gather(x, y, perm, i, b):
    idx = jax.lax.dynamic_slice_in_dim(perm, i * b, b, axis=-1)
    return common.constrain_batch({"x": x[idx], "y": y[idx]}, mesh, stacked)

  def run(state, rx, ry, fx, fy, rperm, fperm, i, j, beta):
    return step(state, gather(rx, ry, rperm, i, batch_r), gather(fx, fy, fperm, j, batch_f), beta)

  return jax.jit(run, donate_argnums=(0,))


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("neggrad_plus", cfg, batch_keys=("batch_size", "forget_batch_size"))
  beta = cfg["beta"]
  base.require("neggrad_plus", common.is_real(beta) and 0 <= beta <= 1,
               f"beta must be in [0, 1], got {beta!r}")
  if data is not None:
    common.check_forget("neggrad_plus", data)
    common.check_batch("neggrad_plus", "batch_size", "retain", cfg["batch_size"],
                       len(data.retain_x))


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  beta, n_f = cfg["beta"], len(data.forget_x)
  with base.Timer() as timer:
    stacked = base.is_stacked(state)
    n_r = int(len(data.retain_x))
    b_r, b_f = int(cfg["batch_size"]), min(int(cfg["forget_batch_size"]), n_f)
    steps = base.steps_per_epoch(n_r, b_r, data)
    f_steps = base.steps_per_epoch(n_f, b_f, data)
    tx = base.optimizer(cfg, cfg["epochs"] * steps, mask)
    state = base.with_optimizer(state, tx, mask)
    retain_key, forget_key = common.split_keys(key, stacked)
    put = lambda a, dtype=None: replicate(jnp.asarray(a, dtype), data.mesh)
    rx, ry = put(data.retain_x), put(data.retain_y, jnp.int32)
    fx, fy = put(data.forget_x), put(data.forget_y, jnp.int32)
    beta_arr, per_model = base.per_model_values(beta, base.num_models(state))
    step = _compiled_paired_step(b_r, b_f, stacked, data.mesh, resolve_model_axis(data.model_axis),
                                 0 if per_model else None)
    beta_arr = jnp.asarray(beta_arr, jnp.float32)
    state = replicate(common.fresh_copy(state), data.mesh)  # steps donate
    t = 0
    for epoch in range(cfg["epochs"]):
      rperm = epoch_permutations(retain_key, epoch, n=n_r, stacked=stacked)
      for i in range(steps):
        cycle, j = divmod(t, f_steps)
        if j == 0:
          fperm = epoch_permutations(forget_key, cycle, n=n_f, stacked=stacked)
        state, _ = step(state, rx, ry, fx, fy, rperm, fperm, i, j, beta_arr)
        t += 1
  return base.result(state, timer, example_gradients=cfg["epochs"] * steps * (b_r + b_f),
                     epochs=cfg["epochs"], info={"forget_batch_size": b_f})
