"""Building blocks shared by several unlearning methods (the method contract is in `base`).

  config checks      is_int, is_real, check_sgd_config, check_distill_config, check_forget,
                     check_batch, check_alpha
  keys and states    split_keys, fresh_copy
  batch loops        constrain_batch, make_step, run_epoch, row_chunks (rows shared by all models or own
                     to each model, optionally a per-model subset)
  distillation       kl_divergence, kl_from_probs
  gradients          float32_zeros, scale_tree, chunk_gradients, gradient_sum
  masks              per_model_mask, mask_fractions, localization_masks
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from unlearn_jax import localize, masking
from unlearn_jax.methods import base
from unlearn_jax.train import (SCHEDULES, TrainState, cross_entropy, epoch_permutations,
                               num_models, over_models, resolve_model_axis)

# ---------------------------------------------------------------------------------------------
# Config checks (one-line `MethodConfigError`s naming the method)
# ---------------------------------------------------------------------------------------------


def is_int(v) -> bool:
  """An integer that is not a bool."""
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v) -> bool:
  """A finite real number that is not a bool."""
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def check_sgd_config(name: str, cfg: Mapping[str, Any],
                     batch_keys: tuple = ("batch_size",)) -> None:
  """The usual SGD hyperparameters: epochs, `batch_keys`, learning rate and, when present,
  momentum, weight decay, schedule, final_lr_fraction."""
  req = functools.partial(base.require, name)
  e = cfg["epochs"]
  req(is_int(e) and e >= 1, f"epochs must be an integer >= 1, got {e!r}")
  for k in batch_keys:
    b = cfg[k]
    req(is_int(b) and b >= 1, f"{k} must be an integer >= 1, got {b!r}")
  lr = cfg["learning_rate"]
  req(is_real(lr) and lr > 0, f"learning_rate must be > 0, got {lr!r}")
  if "momentum" in cfg:
    m = cfg["momentum"]
    req(is_real(m) and 0 <= m < 1, f"momentum must be in [0, 1), got {m!r}")
  if "weight_decay" in cfg:
    wd = cfg["weight_decay"]
    req(is_real(wd) and wd >= 0, f"weight_decay must be >= 0, got {wd!r}")
  if "schedule" in cfg:
    req(cfg["schedule"] in SCHEDULES,
        f"schedule must be one of {', '.join(SCHEDULES)}, got {cfg['schedule']!r}")
  if "final_lr_fraction" in cfg:
    f = cfg["final_lr_fraction"]
    req(is_real(f) and 0 <= f <= 1, f"final_lr_fraction must be in [0, 1], got {f!r}")


def check_distill_config(name: str, cfg: Mapping[str, Any]) -> None:
  """Checks shared by the distillation methods (epochs, temperature, learning rate)."""
  base.require(name, is_int(cfg["epochs"]) and cfg["epochs"] >= 1,
               f"epochs must be an integer >= 1, got {cfg['epochs']}")
  base.require(name, is_real(cfg["temperature"]) and cfg["temperature"] > 0,
               f"temperature must be > 0, got {cfg['temperature']}")
  base.require(name, is_real(cfg["learning_rate"]) and cfg["learning_rate"] > 0,
               f"learning_rate must be > 0, got {cfg['learning_rate']}")
  if "schedule" in cfg:
    base.require(name, cfg["schedule"] in ("constant", "cosine"),
                 f"schedule must be 'constant' or 'cosine', got {cfg['schedule']!r}")


def check_forget(name: str, data: base.UnlearnData) -> int:
  """|D_f|, which must be >= 1."""
  n = data.num_forget
  base.require(name, n >= 1, "the forget set is empty")
  return n


def check_batch(name: str, key: str, what: str, batch_size: int, n: int) -> None:
  """Config `key` (a batch size over the `what` set of n examples) must be in [1, n]."""
  base.require(name, n >= 1, f"the {what} set is empty")
  base.require(name, int(batch_size) == batch_size and 1 <= batch_size <= n,
               f"{key} must be an integer in [1, {n}] (the {what} set has {n} examples), "
               f"got {batch_size}")


def check_alpha(name: str, alpha) -> None:
  """A localization fraction α in (0, 1]."""
  base.require(name, is_real(alpha) and 0 < alpha <= 1, f"alpha must be in (0, 1], got {alpha!r}")


# ---------------------------------------------------------------------------------------------
# Keys and states
# ---------------------------------------------------------------------------------------------


def split_keys(key, stacked: bool, num: int = 2) -> tuple:
  """`num` independent keys per model: a tuple of `num` keys (each `[N, 2]` for a stacked
  state; raw or typed keys)."""
  keys = (jax.vmap(lambda k: jax.random.split(k, num)) if stacked else
          (lambda k: jax.random.split(k, num)))(key)
  if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):  # typed keys: no trailing axis
    return tuple(keys[..., i] for i in range(num))
  return tuple(keys[..., i, :] for i in range(num))


@jax.jit
def fresh_copy(state: TrainState) -> TrainState:
  """A copy of `state` whose buffers may be donated (the caller's state stays valid); one
  compiled program instead of an eager copy per leaf."""
  return jax.tree_util.tree_map(jnp.copy, state)


# ---------------------------------------------------------------------------------------------
# Batch loops
# ---------------------------------------------------------------------------------------------


def constrain_batch(batch, mesh, stacked: bool):
  """`batch` split over the `data` axis of `mesh` (the axis after the model axis of a stacked
  state); unchanged without a mesh. For use inside a jitted step."""
  if mesh is None:
    return batch
  spec = P(None, "data") if stacked else P("data")
  return jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, spec))


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
                   indexed: bool, own_at_rows: bool = True):
  """Jitted: slice batch `i` of `perm`, gather shared and per-model rows, run `step_fn`."""
  step = over_models(step_fn, model_axis) if stacked else step_fn
  take = jax.vmap(lambda a, j: a[j]) if stacked else (lambda a, j: a[j])

  def run(state, shared, own, index, perm, i):
    pos = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size, axis=-1)
    rows = take(index, pos) if indexed else pos
    batch = {k: v[rows] for k, v in shared.items()}
    batch.update({k: take(v, rows if own_at_rows else pos) for k, v in own.items()})
    return step(state, constrain_batch(batch, mesh, stacked))

  return jax.jit(run, donate_argnums=(0,))


def run_epoch(state: TrainState, shared: Mapping[str, jax.Array],
              own: Optional[Mapping[str, jax.Array]] = None, *, key, epoch: int,
              batch_size: int, step_fn, data: base.UnlearnData, index=None,
              own_at: str = "rows") -> TrainState:
  """One epoch of `step_fn` over rows drawn in the order of `epoch_permutations(key, epoch)`.

  Args:
    state: single or stacked state; it is donated (pass a copy you no longer need).
    shared: arrays indexed by row, the same for every model (e.g. images, labels).
    own: arrays indexed by row with a leading model axis for a stacked state (e.g. the teacher
      logits of each seed).
    index: optional per-model map from epoch position to row (`[n]` or `[N, n]`), for a
      per-seed subset of the rows; without it the epoch runs over all rows of `shared`.
    own_at: `rows` (default): `own` is indexed like `shared`, by row; `positions`: by epoch
      position (`own[k][p]` belongs to row `index[k][p]`, e.g. per-model labels of a per-model
      split, `base.Rows`).
    batch_size: examples per step; the last partial batch is dropped (each epoch reshuffles),
      as in `train.fit`.
  """
  own = dict(own or {})
  stacked = base.is_stacked(state)
  n = int(index.shape[-1]) if index is not None else int(next(iter(shared.values())).shape[0])
  steps = base.steps_per_epoch(n, batch_size, data)
  perm = epoch_permutations(key, epoch, n=n, stacked=stacked)
  fn = _compiled_step(step_fn, batch_size, stacked, resolve_model_axis(data.model_axis),
                      data.mesh, index is not None, own_at == "rows")
  for i in range(steps):
    state, _ = fn(state, dict(shared), own, index if index is not None else perm, perm, i)
  return state


# ---------------------------------------------------------------------------------------------
# Distillation divergence
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Gradients (model in inference mode)
# ---------------------------------------------------------------------------------------------


def float32_zeros(tree):
  """float32 zeros of each leaf's shape (a gradient accumulator)."""
  return jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), tree)


@jax.jit
def scale_tree(tree, c):
  """Every leaf times the scalar `c`."""
  return jax.tree_util.tree_map(lambda a: a * c, tree)


@functools.lru_cache(maxsize=None)
def _compiled_chunk_grad(apply_fn, stacked: bool, model_axis: str, per_model_rows: bool = False):
  """Jitted: grad of the weighted sum of CE over one chunk, model in inference mode."""

  def one(params, model_state, xb, yb, wb):

    def loss(p):
      logits, _ = apply_fn(p, model_state, xb, False)
      return jnp.sum(wb * optax.softmax_cross_entropy_with_integer_labels(logits, yb))

    return jax.grad(loss)(params)

  data_axis = 0 if per_model_rows else None
  return jax.jit(over_models(one, model_axis, in_axes=(0, 0, data_axis, data_axis, None))
                 if stacked else one)


def row_chunks(x, y, batch_size: int, index=None, *, pad: bool = True):
  """Consecutive chunks of `batch_size` rows: `(xb, yb, wb, m)`, wb 1 for real rows, 0 for the
  padding that fills the last chunk (`pad`), m the number of real rows.

  Without `index` the chunks are rows of (x, y) (`[B, ...]`); with a per-model `index`
  (`[N, n]`) chunk b holds each model's rows `index[:, b·B:(b+1)·B]` (`[N, B, ...]`),
  gathered chunk by chunk, so a per-model split never materialises N copies of its rows.
  """
  x, y = jnp.asarray(x), jnp.asarray(y, jnp.int32)
  n = int(x.shape[0]) if index is None else int(index.shape[-1])
  if n == 0:
    raise ValueError("row_chunks needs at least one example")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if index is not None:
    index = jnp.asarray(index, jnp.int32)
  for start in range(0, n, batch_size):
    m = min(batch_size, n - start)
    size = batch_size if pad else m
    wb = (jnp.arange(size) < m).astype(jnp.float32)
    if index is None:  # plain slices, zero rows as padding (no gather program)
      xb, yb = x[start:start + m], y[start:start + m]
      if size > m:
        xb = jnp.concatenate([xb, jnp.zeros((size - m, *xb.shape[1:]), xb.dtype)])
        yb = jnp.concatenate([yb, jnp.zeros((size - m,), yb.dtype)])
      yield xb, yb, wb, m
    else:  # each model's rows of these positions (padding repeats the last position)
      rows = index[:, jnp.arange(start, start + size).clip(max=n - 1)]
      yield x[rows], y[rows], wb, m


def chunk_gradients(params, model_state, apply_fn, x, y, *, batch_size: int,
                    stacked: bool = False, model_axis: str = "auto", index=None):
  """Yield `(g, m)` for consecutive chunks of `batch_size` rows of (x, y), in order.

  g = ∇_θ Σ_{i in chunk} CE(f(x_i; θ), y_i) in inference mode, m the chunk's number of rows (the
  last chunk may be partial; it is padded with zero-weight rows, so every chunk shares one
  compiled program, and in inference mode examples are independent, so padding is exact).
  `index` (`[N, n]`): each model of the stacked state takes its own rows (`row_chunks`).
  Shared by `single_gradient.mean_loss_gradient` and `ssd.importance` (same program for the
  same batch_size).
  """
  fn = _compiled_chunk_grad(apply_fn, stacked, resolve_model_axis(model_axis), index is not None)
  for xb, yb, wb, m in row_chunks(x, y, batch_size, index):
    yield fn(params, model_state, xb, yb, wb), m


@functools.lru_cache(maxsize=None)
def _compiled_grad_accumulate(apply_fn, stacked: bool, model_axis: str,
                              per_model_rows: bool = False):
  """acc + scale · ∇θ mean-CE(batch) with the model in inference mode (model_state closed
  over)."""

  def one(acc, params, model_state, x, y, scale):
    def loss(p):
      return cross_entropy(apply_fn(p, model_state, x, False)[0], y)

    g = jax.grad(loss)(params)
    return jax.tree_util.tree_map(lambda a, gi: a + scale * gi.astype(jnp.float32), acc, g)

  data_axis = 0 if per_model_rows else None
  fn = (over_models(one, model_axis, in_axes=(0, 0, 0, data_axis, data_axis, None)) if stacked
        else one)
  return jax.jit(fn, donate_argnums=(0,))


WEIGHTINGS = ("example", "batch")


def gradient_sum(state, x, y, *, batch_size: int, model_axis: str = "auto", index=None,
                 weighting: str = "batch"):
  """Per model, over consecutive batches B of (x, y), every example used:
  `weighting='batch'`: Σ_B ∇θ CE_B(θ), the sum of batch-mean gradients (DEL's and SalUn's code;
  the examples of a partial last batch weigh more); `weighting='example'`: Σ_B (|B|/b) ∇θ
  CE_B(θ) = (1/b) Σ_i ∇θ CE_i(θ) with b = `batch_size`, every example weighing the same
  (the batch size only sets the memory).

  The same sum as `localize.batch_gradient_sum` with an inference-mode CE loss, but one compiled
  function serves every model and every call (the loss does not close over per-model state).
  `index` (`[N, n]`): model k sums over its own rows `index[k]` (batches of positions).
  """
  if weighting not in WEIGHTINGS:
    raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
  fn = _compiled_grad_accumulate(state.apply_fn, base.is_stacked(state),
                                 resolve_model_axis(model_axis), index is not None)
  acc = float32_zeros(state.params)
  for xb, yb, _, m in row_chunks(x, y, batch_size, index, pad=False):
    scale = 1.0 if weighting == "batch" else m / batch_size
    acc = fn(acc, state.params, state.model_state, xb, yb, jnp.float32(scale))
  return acc


# ---------------------------------------------------------------------------------------------
# Masks and per-model localization (`10-del.md` §1-3, §6)
# ---------------------------------------------------------------------------------------------


def per_model_mask(mask, state):
  """A user mask with the state's model axis (broadcast if it has none)."""
  if mask is None or not base.is_stacked(state) or base.has_model_axis(mask, state):
    return mask
  n = num_models(state)
  return jax.tree_util.tree_map(lambda m: jnp.broadcast_to(m, (n, *jnp.shape(m))), mask)


def mask_fractions(mask, state) -> list:
  """Fraction of selected parameters, one float per model."""
  if not base.is_stacked(state):
    return [masking.mask_fraction(mask)]
  return [masking.mask_fraction(jax.tree_util.tree_map(lambda m: m[i], mask))
          for i in range(num_models(state))]


def localization_masks(state, x, y, *, alpha: float, criterion: str = "weighted_grad",
                       granularity: str = "channel", top_h="ten_percent_of_channels",
                       batch_size: int = 128, model_axis: str = "auto", index=None,
                       weighting: str = "batch"):
  """`localize.localization_mask` per model on (x, y): scores (DEL §1) from the gradient sum of
  `weighting` (`gradient_sum`), optional channel aggregation (§2), global top-α (§3). Returns a
  bool mask with the state's model axis. `index` (`[N, n]`): model k scores its own rows
  `index[k]` of (x, y)."""
  if granularity not in localize.GRANULARITIES:
    raise ValueError(f"unknown granularity {granularity!r}; valid: "
                     f"{', '.join(localize.GRANULARITIES)}")
  grads = None
  if criterion != "weight":
    grads = gradient_sum(state, x, y, batch_size=batch_size, model_axis=model_axis, index=index,
                         weighting=weighting)

  def one(params, g):
    scores = localize.scores_from_gradient(params, g, criterion)
    if granularity == "channel":
      scores = localize.aggregate_channels(scores, top_h)
    return localize.global_top_fraction_mask(scores, alpha)

  if not base.is_stacked(state):
    return one(state.params, grads)
  take = lambda tree, i: None if tree is None else jax.tree_util.tree_map(lambda a: a[i], tree)
  masks = [one(take(state.params, i), take(grads, i)) for i in range(num_models(state))]
  return jax.tree_util.tree_map(lambda *m: jnp.stack(m), *masks)
