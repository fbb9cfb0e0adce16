"""SCRUB: a student that stays close to its teacher on D_r and moves away from it on D_f.

Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS
2023 (arXiv 2302.09880; code github.com/meghdadk/SCRUB). `40-methods.md`.

The teacher is the frozen original model θ* (its parameters and BatchNorm statistics, run in
inference mode); the student starts at θ* and trains in training mode. One SGD optimizer (its
momentum shared by both kinds of pass, as in the reference code) runs, per epoch e = 0 .. E-1:

  if e < max_steps: a "max" pass over D_f (batches of forget_batch_size) minimizing
                    -KL_T(student || teacher)                       (pushes the student away)
  a "min" pass over D_r (batches of retain_batch_size) minimizing
                    gamma * CE(student, y) + alpha * KL_T(student || teacher)

KL_T is the knowledge-distillation divergence of the reference code (`DistillKL`):
  KL_T(s || t) = T^2 / B * sum_b sum_c p_t[b, c] (log p_t[b, c] - log p_s[b, c]),
  p_t = softmax(teacher_logits / T), p_s = softmax(student_logits / T),
i.e. KL(teacher || student) of the tempered distributions (`F.kl_div(log p_s, p_t,
reduction="sum") * T**2 / B`), summed over classes, averaged over the batch and scaled by T^2
(Hinton et al.'s gradient-scale correction). The paper writes d(x; w^u) = KL(p(f(x; w^o)) ||
p(f(x; w^u))): the same quantity; "student || teacher" in the method table names its arguments.

Defaults: T = 4, gamma = 0.99, alpha = 0.001, SGD momentum 0.9, weight decay 5e-4, forget batch
16, retain batch 64, as in the reference code (small-scale notebook; DEL's batch sizes), except the
learning rate and the epochs. The reference lr 5e-4 with 3 to 5 epochs leaves a digits-sized model
untouched (10 % iid forget set: 8 forget steps per max pass; forget accuracy stays 100 %); the
defaults use lr 2e-3 with 6 epochs, max passes in the first 3 (the last 3 epochs are min passes
that repair the retain set). On digits (CNN width 0.5, 2 seeds) that lowers forget accuracy from
100 % to about 97-98 %, the test accuracy level a retrained model would reach, with retain
accuracy >= 99.9 % and test accuracy within about 1.5 points of the original. lr 5e-3 or more
also damages retain/test accuracy (lr 2e-2: retain 28-52 %). The reference code's lr decay at
epochs 3/5/9 and its SWA averaging (from epoch 10) are not implemented; `schedule="cosine"` is
available. A mask (`10-del.md` §6) restricts which parameters move (BatchNorm running statistics
still update, as in every training-mode method).

The teacher's logits on D_f and D_r are computed once (it is frozen and runs in inference mode,
where examples are independent), so each step costs one student forward/backward pass.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from unlearn_jax import masking
from unlearn_jax.methods import base
from unlearn_jax.train import (TrainState, cross_entropy, epoch_permutations, num_models,
                               over_models, predict, resolve_model_axis)

USES_FORGET = True
DEFAULTS = dict(
    epochs=6,                # E: epochs (each: optional max pass over D_f, then min pass over D_r)
    max_steps=3,             # max passes over D_f in epochs 0 .. max_steps-1 (code: msteps)
    forget_batch_size=16,
    retain_batch_size=64,
    learning_rate=2e-3,      # reference code: 5e-4 (too small to move a digits-sized run)
    momentum=0.9,
    weight_decay=5e-4,
    schedule="constant",     # constant | cosine (over all steps of both passes)
    final_lr_fraction=0.0,
    temperature=4.0,         # T of KL_T
    gamma=0.99,              # weight of CE on D_r
    alpha=0.001,             # weight of KL_T on D_r
)


# ------------------------------------------------------------------------------------------
# Shared machinery of the distillation methods (also used by `bad_teacher`)
# ------------------------------------------------------------------------------------------


def kl_divergence(student_logits: jax.Array, teacher_logits: jax.Array, temperature: float,
                  *, reduction: str = "batchmean_t2") -> jax.Array:
  """KL(softmax(teacher/T) || softmax(student/T)), the distillation divergence.

  Args:
    student_logits, teacher_logits: `[B, C]` logits (teacher logits are not differentiated
      through when they come from a frozen model; this function does not stop gradients).
    temperature: T > 0.
    reduction: `batchmean_t2` (SCRUB's `DistillKL`: sum over classes, mean over the batch,
      times T^2) or `mean` (PyTorch's default `F.kl_div(..., reduction="mean")`, used by the bad
      teacher code: mean over batch *and* classes, no T^2).

  Returns:
    A scalar.
  """
  log_ps = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  log_pt = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
  return kl_from_probs(log_ps, jnp.exp(log_pt), temperature, reduction=reduction,
                       log_target=log_pt)


def kl_from_probs(log_ps: jax.Array, pt: jax.Array, temperature: float, *,
                  reduction: str = "batchmean_t2", log_target: Optional[jax.Array] = None
                  ) -> jax.Array:
  """KL(pt || ps) from student log-probabilities and target probabilities (see
  `kl_divergence`); entries with pt = 0 contribute 0 (xlogy convention)."""
  log_pt = jnp.log(jnp.where(pt > 0, pt, 1.0)) if log_target is None else log_target
  per_class = jnp.where(pt > 0, pt * (log_pt - log_ps), 0.0)
  if reduction == "batchmean_t2":
    return temperature ** 2 * jnp.mean(jnp.sum(per_class, axis=-1))
  if reduction == "mean":
    return jnp.mean(per_class)
  raise ValueError(f"unknown KL reduction '{reduction}'; choose batchmean_t2 or mean")


# loss(logits, batch, params, step) -> scalar; the batch holds the gathered per-row arrays.
BatchLoss = Callable[[jax.Array, Mapping[str, jax.Array], Any, jax.Array], jax.Array]


def make_step(loss: BatchLoss):
  """A pure `step(state, batch) -> (state, metrics)` minimizing `loss`, model in training mode
  (like `train.make_train_step`, but the loss sees the whole batch dict, e.g. teacher logits)."""

  def step(state: TrainState, batch):
    def loss_fn(params):
      logits, model_state = state.apply_fn(params, state.model_state, batch["x"], True)
      return loss(logits, batch, params, state.step), model_state

    (value, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, model_state=model_state,
                         opt_state=opt_state), {"loss": value}

  return step


@functools.lru_cache(maxsize=None)
def _compiled_step(step_fn, batch_size: int, stacked: bool, model_axis: str, mesh,
                   indexed: bool):
  """Jitted: slice batch `i` of `perm`, gather shared and per-model rows, run `step_fn`."""
  step = over_models(step_fn, model_axis) if stacked else step_fn
  take = jax.vmap(lambda a, j: a[j]) if stacked else (lambda a, j: a[j])

  def run(state, shared, own, index, perm, i):
    pos = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size, axis=-1)
    rows = take(index, pos) if indexed else pos
    batch = {k: v[rows] for k, v in shared.items()}
    batch.update({k: take(v, rows) for k, v in own.items()})
    if mesh is not None:
      spec = P(None, "data") if stacked else P("data")
      batch = jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, spec))
    return step(state, batch)

  return jax.jit(run, donate_argnums=(0,))


def run_epoch(state: TrainState, shared: Mapping[str, jax.Array],
              own: Optional[Mapping[str, jax.Array]] = None, *, key, epoch: int,
              batch_size: int, step_fn, data: base.UnlearnData, index=None) -> TrainState:
  """One epoch of `step_fn` over rows drawn in the order of `epoch_permutations(key, epoch)`.

  Args:
    state: single or stacked state; it is donated (pass a copy you no longer need).
    shared: arrays indexed by row, the same for every model (e.g. images, labels).
    own: arrays indexed by row with a leading model axis for a stacked state (e.g. the teacher
      logits of each seed).
    index: optional per-model map from epoch position to row (`[n]` or `[N, n]`), for a
      per-seed subset of the rows; without it the epoch runs over all rows of `shared`.
    batch_size: examples per step; the last partial batch is dropped (each epoch reshuffles),
      as in `train.fit`.
  """
  own = dict(own or {})
  stacked = num_models(state) is not None
  n = int(index.shape[-1]) if index is not None else int(next(iter(shared.values())).shape[0])
  steps = base.steps_per_epoch(n, batch_size, data)
  perm = epoch_permutations(key, epoch, n=n, stacked=stacked)
  fn = _compiled_step(step_fn, batch_size, stacked, resolve_model_axis(data.model_axis),
                      data.mesh, index is not None)
  for i in range(steps):
    state, _ = fn(state, dict(shared), own, index if index is not None else perm, perm, i)
  return state


def cached_optimizer(kind: str, items: tuple, total_steps: int, masked: bool
                     ) -> optax.GradientTransformation:
  """The optimizer of a method config, cached so equal configs give the *same* object.

  `TrainState.tx` is static (part of the jit cache key), so a fresh optax object per call would
  recompile every step function on each run; caching keeps one compiled program per config
  (`total_steps` only matters for a cosine schedule, so it is not part of the key otherwise).
  kind: `sgd` (`base.optimizer`: SGD, momentum, coupled weight decay, schedule) or `adam`.
  items: the config's optimizer hyperparameters as a tuple of (name, value) pairs.
  masked: chain `masking.masked_updates_from_state()` (mask set by `base.with_optimizer`).
  """
  cosine = kind == "sgd" and dict(items).get("schedule", "constant") == "cosine"
  return _cached_optimizer(kind, items, total_steps if cosine else 0, masked)


@functools.lru_cache(maxsize=64)
def _cached_optimizer(kind: str, items: tuple, total_steps: int, masked: bool):
  cfg = dict(items)
  if kind == "sgd":
    tx = base.optimizer(cfg, total_steps)
  elif kind == "adam":
    tx = optax.adam(cfg["learning_rate"])
  else:
    raise ValueError(f"unknown optimizer '{kind}'; choose sgd or adam")
  return optax.chain(tx, masking.masked_updates_from_state()) if masked else tx


def split_keys(key, num: int, stacked: bool):
  """`num` independent keys per model (each `[N, 2]` for a stacked state)."""
  keys = (jax.vmap(lambda k: jax.random.split(k, num)) if stacked else
          (lambda k: jax.random.split(k, num)))(key)
  if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):  # typed keys: no trailing axis
    return [keys[..., i] for i in range(num)]
  return [keys[..., i, :] for i in range(num)]


@jax.jit
def fresh_copy(state: TrainState) -> TrainState:
  """A copy of `state` whose buffers may be donated (the caller's state stays valid); one
  compiled program instead of an eager copy per leaf."""
  return jax.tree_util.tree_map(jnp.copy, state)


def sgd_items(cfg: Mapping[str, Any]) -> tuple:
  keys = ("learning_rate", "momentum", "weight_decay", "schedule", "final_lr_fraction")
  return tuple((k, cfg[k]) for k in keys if k in cfg)


def check_common(name: str, cfg: Mapping[str, Any]) -> None:
  """Checks shared by the distillation methods (epochs, temperature, learning rate)."""
  base.require(name, int(cfg["epochs"]) == cfg["epochs"] and cfg["epochs"] >= 1,
               f"epochs must be an integer >= 1, got {cfg['epochs']}")
  base.require(name, cfg["temperature"] > 0,
               f"temperature must be > 0, got {cfg['temperature']}")
  base.require(name, cfg["learning_rate"] > 0,
               f"learning_rate must be > 0, got {cfg['learning_rate']}")
  if "schedule" in cfg:
    base.require(name, cfg["schedule"] in ("constant", "cosine"),
                 f"schedule must be 'constant' or 'cosine', got {cfg['schedule']!r}")


def check_batch(name: str, key: str, what: str, batch_size: int, n: int) -> None:
  """Config `key` (a batch size over the `what` set of n examples) must be in [1, n]."""
  base.require(name, n >= 1, f"the {what} set is empty")
  base.require(name, int(batch_size) == batch_size and 1 <= batch_size <= n,
               f"{key} must be an integer in [1, {n}] (the {what} set has {n} examples), "
               f"got {batch_size}")


# ------------------------------------------------------------------------------------------
# SCRUB
# ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def scrub_steps(temperature: float, gamma: float, alpha: float):
  """The (max, min) steps of SCRUB for these hyperparameters (cached: one compile per config).

  Batches carry `x`, `t` (teacher logits) and, for the min step, `y`.
  """

  def max_loss(logits, batch, params, step):
    del params, step
    return -kl_divergence(logits, batch["t"], temperature)

  def min_loss(logits, batch, params, step):
    del params, step
    return (gamma * cross_entropy(logits, batch["y"])
            + alpha * kl_divergence(logits, batch["t"], temperature))

  return make_step(max_loss), make_step(min_loss)


def check_config(cfg: Mapping[str, Any]) -> None:
  check_common("scrub", cfg)
  base.require("scrub", int(cfg["max_steps"]) == cfg["max_steps"] and cfg["max_steps"] >= 0,
               f"max_steps must be an integer >= 0, got {cfg['max_steps']}")
  base.require("scrub", cfg["gamma"] >= 0, f"gamma must be >= 0, got {cfg['gamma']}")
  base.require("scrub", cfg["alpha"] > 0,
               f"alpha must be > 0 (the retain-set KL keeps the student near the teacher), "
               f"got {cfg['alpha']}")


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg)
  epochs, max_steps = int(cfg["epochs"]), int(cfg["max_steps"])
  fb, rb = cfg["forget_batch_size"], cfg["retain_batch_size"]
  nf, nr = len(data.forget_x), len(data.retain_x)
  check_batch("scrub", "forget_batch_size", "forget", fb, nf)
  check_batch("scrub", "retain_batch_size", "retain", rb, nr)
  fb, rb = int(fb), int(rb)
  with base.Timer() as timer:
    stacked = num_models(state) is not None
    f_steps = base.steps_per_epoch(nf, fb, data)
    r_steps = base.steps_per_epoch(nr, rb, data)
    max_epochs = min(max_steps, epochs)
    total = max_epochs * f_steps + epochs * r_steps
    tx = cached_optimizer("sgd", sgd_items(cfg), total, mask is not None)
    fx = jnp.asarray(data.forget_x)
    rx, ry = jnp.asarray(data.retain_x), jnp.asarray(data.retain_y)
    # The frozen teacher θ* in inference mode: its logits are fixed, compute them once.
    t_forget = predict(state, fx, model_axis=data.model_axis)
    t_retain = predict(state, rx, model_axis=data.model_axis)
    student = fresh_copy(base.with_optimizer(state, tx, mask))
    forget_key, retain_key = split_keys(key, 2, stacked)
    max_step, min_step = scrub_steps(float(cfg["temperature"]), float(cfg["gamma"]),
                                     float(cfg["alpha"]))
    for epoch in range(epochs):
      if epoch < max_steps:
        student = run_epoch(student, {"x": fx}, {"t": t_forget}, key=forget_key, epoch=epoch,
                            batch_size=fb, step_fn=max_step, data=data)
      student = run_epoch(student, {"x": rx, "y": ry}, {"t": t_retain}, key=retain_key,
                          epoch=epoch, batch_size=rb, step_fn=min_step, data=data)
  return base.result(student, timer,
                     example_gradients=max_epochs * f_steps * fb + epochs * r_steps * rb,
                     epochs=epochs,
                     info={"max_passes": max_epochs, "teacher_forward_examples": nf + nr})
