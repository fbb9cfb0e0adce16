"""What every unlearning method shares: its inputs, its result, its optimizer, cost accounting,
divergence checks. (Building blocks that several methods use live in `methods.common`.)

A method is a module `unlearn_jax.methods.<name>` that defines
  USES_FORGET: bool                     whether it reads D_f (matters for the overparam. study)
  DEFAULTS: dict                        its hyperparameters (every number lives in the config)
  check_config(config, data=None) -> None   raises `MethodConfigError` for a bad hyperparameter
                                        (and, given `data`, one that does not fit its sizes);
                                        `unlearn` calls it first, the launchers before any run
  unlearn(state, data, config, key, mask=None) -> UnlearnResult
where `state` is the trained (original) `TrainState`, single or stacked over seeds, `data` an
`UnlearnData`, `config` a mapping with the method's hyperparameters (DEFAULTS overridden by the
user), `key` one PRNG key per model (`[N, 2]` for a stacked state) and `mask` an optional
element-wise mask pytree (same structure as params, or with a leading model axis for per-seed
masks) that restricts which parameters may change (`10-del.md` §6).

Many candidates at once (validation-based tuning, `30-overparam.md` §5): a method may list in
  VECTORIZED: tuple[str, ...]           hyperparameters that may be `PerModel` values
the hyperparameters it accepts as a `PerModel` value, one number per model of a stacked state
(e.g. C candidates x N seeds stacked as C*N models), so a whole grid over them runs as one
compiled program. `learning_rate` is handled here (`optimizer`, `with_optimizer`) for every
method whose optimizer comes from `optimizer` and that is called without a mask.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from unlearn_jax import masking
from unlearn_jax.errors import UserError
from unlearn_jax.models import Model
from unlearn_jax.train import (TrainState, check_batch_size, fit, learning_rate_schedule,
                               make_optimizer,
                               make_train_step, num_models, train_step)

OPTIMIZERS = ("sgd", "adam")


class PerModel(float):
  """A hyperparameter with one value per model of a stacked state (`values`, a tuple of
  floats). As a float it is its first value, so config checks see a valid number; only code
  that asks for `.values` (a method's VECTORIZED hyperparameters) uses the others. Equality and
  hashing include every value, so it never collides with a plain float in a cache."""

  def __new__(cls, values):
    values = tuple(float(v) for v in values)
    if not values:
      raise ValueError("PerModel needs at least one value")
    obj = super().__new__(cls, values[0])
    obj.values = values
    return obj

  def __eq__(self, other):
    return isinstance(other, PerModel) and self.values == other.values

  def __ne__(self, other):
    return not self == other

  def __hash__(self):
    return hash(("PerModel", self.values))

  def __repr__(self):
    return f"PerModel({list(self.values)})"

  def array(self, dtype=jnp.float32) -> jax.Array:
    """The values as a `[num_models]` array."""
    return jnp.asarray(self.values, dtype)


def per_model_values(value, num: Optional[int]):
  """`(array [num], True)` for a `PerModel` value (checked to have `num` values), else
  `(value, False)`."""
  if not isinstance(value, PerModel):
    return value, False
  if num is None or len(value.values) != num:
    raise MethodConfigError(f"a per-model hyperparameter has {len(value.values)} values for "
                            f"{num} models; give one value per model of the stacked state")
  return value.array(), True


class PerModelOptimizer(NamedTuple):
  """An optimizer whose learning rate is one value per model (`learning_rates`), stored in its
  state by `with_optimizer` (`PerModelLRState`); otherwise the optimizer of `optimizer`."""
  init: Callable
  update: Callable
  learning_rates: tuple


class PerModelLRState(NamedTuple):
  learning_rate: jax.Array  # this model's learning rate (a scalar per model)
  inner: Any


def _sgd(learning_rate, *, total_steps: int, momentum: float, weight_decay: float,
         schedule: str, final_lr_fraction: float, epoch_steps: int = 0
         ) -> optax.GradientTransformation:
  """`train.make_optimizer` for a traced learning rate (same schedule, no value checks)."""
  lr = learning_rate_schedule(learning_rate, total_steps=total_steps, schedule=schedule,
                              final_lr_fraction=final_lr_fraction,
                              epoch_steps=epoch_steps or None)
  parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  parts.append(optax.sgd(lr, momentum=momentum or None, nesterov=False))
  return optax.chain(*parts)


@functools.lru_cache(maxsize=64)
def _per_model_optimizer(kind: str, learning_rates: tuple, momentum: float, weight_decay: float,
                         schedule: str, final_lr_fraction: float, total_steps: int,
                         epoch_steps: int = 0) -> PerModelOptimizer:
  if kind == "sgd":
    make = functools.partial(_sgd, total_steps=total_steps, momentum=momentum,
                             weight_decay=weight_decay, schedule=schedule,
                             final_lr_fraction=final_lr_fraction, epoch_steps=epoch_steps)
  elif kind == "adam":
    make = optax.adam
  else:
    raise ValueError(f"unknown optimizer '{kind}'; choose one of {', '.join(OPTIMIZERS)}")

  def init(params):
    return PerModelLRState(jnp.ones((), jnp.float32), make(1.0).init(params))

  def update(updates, state, params=None):
    updates, inner = make(state.learning_rate).update(updates, state.inner, params)
    return updates, PerModelLRState(state.learning_rate, inner)

  return PerModelOptimizer(init, update, learning_rates)


@dataclasses.dataclass(frozen=True)
class Rows:
  """The examples of one role (retain, forget, or both) as rows of arrays `x`, `y`.

  `index` None: every row, the same for every model. `index` `[N, n]` (int32): model k's
  examples are the rows `index[k]` (its own subset, `55-shadow-eval.md`), every model the same
  count n. Methods read data through `Rows`, so one code path serves shared and per-model
  splits: `train.fit(x, y, subsets=index)`, `train.epoch_order`, or the gathered `arrays()`.
  """
  x: Any
  y: Any
  index: Any = None

  def __len__(self) -> int:
    return int(self.index.shape[-1]) if self.index is not None else int(len(self.x))

  @property
  def per_model(self) -> bool:
    return self.index is not None

  def labels(self) -> jax.Array:
    """The labels in row order: `[n]`, or `[N, n]` (model k's rows) for a per-model index."""
    y = jnp.asarray(self.y, jnp.int32)
    return y if self.index is None else y[jnp.asarray(self.index)]

  def arrays(self) -> tuple:
    """`(x, y)` of the examples: shared `[n, ...]`, or per model `[N, n, ...]` (gathered; for
    the small forget sets whole passes run over)."""
    if self.index is None:
      return jnp.asarray(self.x), jnp.asarray(self.y, jnp.int32)
    idx = jnp.asarray(self.index)
    return jnp.asarray(self.x)[idx], jnp.asarray(self.y, jnp.int32)[idx]


def _rows_union(a: Rows, b: Rows, stacked_n: Optional[int] = None) -> Rows:
  """Rows of `a` then rows of `b` (D_r ∪ D_f), as one `Rows` over the shared arrays."""
  if a.index is None and b.index is None:
    return Rows(jnp.concatenate([jnp.asarray(a.x), jnp.asarray(b.x)]),
                jnp.concatenate([jnp.asarray(a.y), jnp.asarray(b.y)]))
  if a.x is b.x and a.y is b.y:  # one pool: join the indices
    return Rows(a.x, a.y, jnp.concatenate([jnp.asarray(a.index), jnp.asarray(b.index)], -1))
  na = int(len(a.x))
  x = jnp.concatenate([jnp.asarray(a.x), jnp.asarray(b.x)])
  y = jnp.concatenate([jnp.asarray(a.y), jnp.asarray(b.y)])
  n = next(r.index.shape[0] for r in (a, b) if r.index is not None)
  ia = (jnp.asarray(a.index) if a.index is not None
        else jnp.broadcast_to(jnp.arange(na, dtype=jnp.int32), (n, na)))
  ib = (jnp.asarray(b.index) if b.index is not None
        else jnp.broadcast_to(jnp.arange(len(b.x), dtype=jnp.int32), (n, len(b.x))))
  return Rows(x, y, jnp.concatenate([ia, ib + na], -1).astype(jnp.int32))


@dataclasses.dataclass(frozen=True)
class UnlearnData:
  """The data and model description an unlearning method may use.

  Labels are the training labels (for a `confusion` forget set, the swapped ones).

  Per-model splits (shadow models, `55-shadow-eval.md`): `retain_index` / `forget_index`
  (`[N, r]` / `[N, f]` int32, one row per model of the stacked state) select model k's retain
  and forget examples as rows of `retain_x` / `forget_x` (typically both the whole training
  set); None selects every row for every model. Methods read the examples through `retain`,
  `forget` and `train` (`Rows`), never the raw arrays, so that model k of a stacked run with a
  per-model split equals a single run on `model_split(k)`.
  """
  retain_x: Any
  retain_y: Any
  forget_x: Any
  forget_y: Any
  num_classes: int
  model: Model
  image_shape: tuple
  model_axis: str = "auto"
  mesh: Any = None
  retain_index: Any = None
  forget_index: Any = None

  @property
  def retain(self) -> Rows:
    return Rows(self.retain_x, self.retain_y, self.retain_index)

  @property
  def forget(self) -> Rows:
    return Rows(self.forget_x, self.forget_y, self.forget_index)

  @property
  def train(self) -> Rows:
    """D_r ∪ D_f: the retain rows, then the forget rows (per model with a per-model split)."""
    return _rows_union(self.retain, self.forget)

  @property
  def num_retain(self) -> int:
    return len(self.retain)

  @property
  def num_forget(self) -> int:
    return len(self.forget)

  @property
  def per_model(self) -> bool:
    """Whether each model has its own retain/forget split."""
    return self.retain_index is not None or self.forget_index is not None

  @property
  def num_split_models(self) -> Optional[int]:
    """N of a per-model split (the rows of its index arrays), None for a shared split."""
    idx = self.retain_index if self.retain_index is not None else self.forget_index
    return None if idx is None else int(idx.shape[0])

  def model_split(self, k: int) -> "UnlearnData":
    """Model k's split as a shared `UnlearnData` (its rows gathered): the single-model run that
    model k of a stacked run with this per-model split must equal."""
    take = lambda a, idx: a if idx is None else jnp.asarray(a)[jnp.asarray(idx)[k]]
    return dataclasses.replace(
        self, retain_x=take(self.retain_x, self.retain_index),
        retain_y=take(self.retain_y, self.retain_index),
        forget_x=take(self.forget_x, self.forget_index),
        forget_y=take(self.forget_y, self.forget_index), retain_index=None, forget_index=None)

  @property
  def train_x(self):
    """D_r ∪ D_f images of a shared split (`train` for per-model splits)."""
    self._shared("train_x")
    return jnp.concatenate([jnp.asarray(self.retain_x), jnp.asarray(self.forget_x)])

  @property
  def train_y(self):
    self._shared("train_y")
    return jnp.concatenate([jnp.asarray(self.retain_y), jnp.asarray(self.forget_y)])

  def _shared(self, what: str) -> None:
    if self.per_model:
      raise ValueError(f"UnlearnData.{what} is the shared split's; with a per-model split read "
                       "`data.train` (Rows with per-model indices)")


def check_split(data: UnlearnData, state) -> None:
  """A per-model split needs a stacked state with one index row per model."""
  n = data.num_split_models
  if n is None:
    return
  models = num_models(state)
  if models != n:
    raise MethodConfigError(f"the per-model split has {n} rows of indices but the state has "
                            f"{models or 'a single'} model(s); give one row per stacked model")


@dataclasses.dataclass
class UnlearnResult:
  """The unlearned state, its cost and per-model divergence flags.

  cost: `wall_s`, `example_gradients` (forward+backward example passes, per model) and `epochs`.
  diverged: bool per model (a scalar bool for a single state); a diverged model's numbers must
  be reported as diverged, never as a normal result.
  """
  state: TrainState
  cost: dict
  diverged: np.ndarray
  info: dict = dataclasses.field(default_factory=dict)


class MethodConfigError(UserError):
  """A method's configuration is invalid."""


def merged_config(name: str, defaults: Mapping[str, Any], config: Optional[Mapping[str, Any]]
                  ) -> dict:
  """DEFAULTS overridden by `config`; unknown keys are an error naming the method."""
  config = dict(config or {})
  unknown = sorted(set(config) - set(defaults))
  if unknown:
    raise MethodConfigError(f"method '{name}' has no hyperparameter(s) {unknown}; it accepts "
                            f"{sorted(defaults)}")
  return {**defaults, **config}


def require(name: str, ok: bool, message: str) -> None:
  """Raise a one-line `MethodConfigError` naming the method unless `ok`."""
  if not ok:
    raise MethodConfigError(f"method '{name}': {message}")


def optimizer(cfg: Mapping[str, Any], total_steps: int, mask=None, *,
              epoch_steps: Optional[int] = None, decay_boundaries: tuple = ()
              ) -> optax.GradientTransformation:
  """The optimizer of a method config, one cached object per distinct setting.

  cfg keys: `optimizer` (`sgd`, the default, or `adam`), `learning_rate` and, for SGD,
  `momentum`, `weight_decay`, `schedule`, `final_lr_fraction` (`train.make_optimizer`: momentum,
  coupled weight decay, per-step or per-epoch schedule), and `decay_unmasked`. `epoch_steps`
  (steps per epoch, for `schedule="cosine_epoch"`) defaults to `total_steps / cfg["epochs"]`;
  `decay_boundaries` are optimizer steps where the learning rate is multiplied by
  `cfg["lr_decay_rate"]` (SCRUB's step decay).

  Only whether a `mask` is given matters here: then `masking.masked_updates_from_state()` is
  chained last (masked-out parameters stay bit-identical) and `with_optimizer` stores the mask
  itself in the optimizer state (so it may carry a leading model axis). With
  `cfg["decay_unmasked"]` the mask is applied to the *gradients* instead, before weight decay and
  momentum, as PyTorch code that does `param.grad *= mask; optimizer.step()` (SalUn before its
  Feb 2026 fix): masked-out parameters then still shrink by weight decay. `TrainState.tx` is
  static (part of the jit cache key), so equal settings return the *same* object and repeated
  runs (seeds, sweeps, tests) reuse compiled steps; `total_steps` is part of the setting only for
  a non-constant schedule.
  """
  kind = cfg.get("optimizer", "sgd")
  masked = "gradients" if mask is not None and cfg.get("decay_unmasked", False) else (
      "updates" if mask is not None else "")
  schedule = cfg.get("schedule", "constant")
  if schedule == "cosine_epoch" and epoch_steps is None:
    epoch_steps = max(1, int(total_steps) // max(1, int(cfg["epochs"])))
  if isinstance(cfg["learning_rate"], PerModel):  # one learning rate per model (tuning)
    require("optimizer", mask is None, "a per-model learning rate does not combine with a mask")
    require("optimizer", not decay_boundaries,
            "a per-model learning rate does not combine with a step decay")
    lrs = cfg["learning_rate"].values
    if kind == "adam":
      return _per_model_optimizer("adam", lrs, 0.0, 0.0, "constant", 0.0, 0)
    return _per_model_optimizer(kind, lrs, float(cfg.get("momentum", 0.9)),
                                float(cfg.get("weight_decay", 0.0)), schedule,
                                float(cfg.get("final_lr_fraction", 0.0)),
                                0 if schedule == "constant" else int(total_steps),
                                int(epoch_steps) if schedule == "cosine_epoch" else 0)
  if kind == "adam":  # only the learning rate applies
    return _cached_optimizer("adam", float(cfg["learning_rate"]), 0.0, 0.0, "constant", 0.0, 0,
                             masked)
  return _cached_optimizer(kind, float(cfg["learning_rate"]), float(cfg.get("momentum", 0.9)),
                           float(cfg.get("weight_decay", 0.0)), schedule,
                           float(cfg.get("final_lr_fraction", 0.0)),
                           0 if schedule == "constant" and not decay_boundaries
                           else int(total_steps), masked,
                           int(epoch_steps) if schedule == "cosine_epoch" else 0,
                           tuple(int(b) for b in decay_boundaries),
                           float(cfg.get("lr_decay_rate", 0.1)) if decay_boundaries else 0.0)


@functools.lru_cache(maxsize=256)
def _cached_optimizer(kind: str, learning_rate: float, momentum: float, weight_decay: float,
                      schedule: str, final_lr_fraction: float, total_steps: int, masked: str,
                      epoch_steps: int = 0, decay_boundaries: tuple = (),
                      decay_rate: float = 0.0) -> optax.GradientTransformation:
  if kind == "sgd":
    tx = make_optimizer(learning_rate=learning_rate, total_steps=total_steps, momentum=momentum,
                        weight_decay=weight_decay, schedule=schedule,
                        final_lr_fraction=final_lr_fraction, epoch_steps=epoch_steps or None,
                        decay_boundaries=decay_boundaries, decay_rate=decay_rate)
  elif kind == "adam":
    tx = optax.adam(learning_rate)
  else:
    raise ValueError(f"unknown optimizer '{kind}'; choose one of {', '.join(OPTIMIZERS)}")
  if masked == "gradients":
    return optax.chain(masking.masked_updates_from_state(), tx)
  return optax.chain(tx, masking.masked_updates_from_state()) if masked else tx


def with_optimizer(state: TrainState, tx: optax.GradientTransformation, mask=None
                   ) -> TrainState:
  """The trained state with a fresh optimizer `tx` (step 0). A mask is stored in the optimizer
  state (`masking.masked_updates_from_state`), so per-model masks work under vmap."""
  stacked = is_stacked(state)

  def init(params, m):
    opt_state = tx.init(params)
    return opt_state if m is None else masking.set_mask(opt_state, m)

  if mask is None:
    opt_state = (jax.vmap(lambda p: init(p, None)) if stacked else lambda p: init(p, None))(
        state.params)
  else:
    opt_state = (jax.vmap(init, in_axes=(0, mask_axis(mask, state))) if stacked else init)(
        state.params, mask)
  if isinstance(tx, PerModelOptimizer):  # each model's own learning rate
    lrs, _ = per_model_values(PerModel(tx.learning_rates), num_models(state))
    opt_state = opt_state._replace(learning_rate=lrs)
  step = jnp.zeros_like(state.step)
  return state.replace(step=step, opt_state=opt_state, tx=tx)


def is_stacked(state: TrainState) -> bool:
  """Whether `state` is stacked over models (a leading model axis)."""
  return num_models(state) is not None


def has_model_axis(mask, state: TrainState) -> bool:
  """Whether `mask` carries a leading model axis (one mask per model of a stacked state)."""
  m = jax.tree_util.tree_leaves(mask)[0]
  p = jax.tree_util.tree_leaves(state.params)[0]
  return jnp.ndim(m) == jnp.ndim(p)


def mask_axis(mask, state: TrainState):
  """The `vmap` axis of `mask` over a stacked state's models: 0 for per-model masks, None for
  a mask shared by all models (and for no mask or a single state)."""
  return 0 if mask is not None and is_stacked(state) and has_model_axis(mask, state) else None


def train_on(state: TrainState, rows: Rows, *, key, epochs: int, batch_size: int,
             objective=None, data: UnlearnData, train_step_fn=None) -> TrainState:
  """Run `epochs` of minibatch training on `rows` (each model its own rows for a per-model
  index) with `objective` (default cross-entropy) or a ready `train_step_fn`."""
  step_fn = train_step_fn or (train_step if objective is None else make_train_step(objective))
  return fit(state, rows.x, rows.y, key=key, epochs=epochs, batch_size=batch_size,
             mesh=data.mesh, train_step_fn=step_fn, model_axis=data.model_axis,
             subsets=rows.index)


def steps_per_epoch(n: int, batch_size: int, data: UnlearnData) -> int:
  return check_batch_size(batch_size, n, data.mesh)


def diverged(state: TrainState) -> np.ndarray:
  """Per model: True if any parameter is NaN or infinite."""
  stacked = is_stacked(state)
  leaves = jax.tree_util.tree_leaves(state.params)
  axes = lambda a: tuple(range(1, a.ndim)) if stacked else None
  bad = sum(jnp.sum(~jnp.isfinite(a), axis=axes(a)) for a in leaves)
  return np.asarray(bad > 0)


class Timer:
  """Wall-clock timer whose result waits for asynchronous dispatch to finish."""

  def __enter__(self):
    self.start = time.perf_counter()
    return self

  def stop(self, tree) -> float:
    jax.block_until_ready(tree)
    self.wall_s = time.perf_counter() - self.start
    return self.wall_s

  def __exit__(self, *exc):
    return False


def result(state: TrainState, timer: Timer, *, example_gradients: int, epochs: float,
           info: Optional[dict] = None) -> UnlearnResult:
  """Finish a method: time it, check divergence, record its cost."""
  wall = timer.stop(state)
  return UnlearnResult(state=state, diverged=diverged(state), info=info or {},
                       cost={"wall_s": wall, "example_gradients": int(example_gradients),
                             "epochs": float(epochs)})

__all__ = ["Rows", "UnlearnData", "UnlearnResult", "check_split", "MethodConfigError", "OPTIMIZERS", "PerModel",
           "PerModelOptimizer", "per_model_values", "merged_config",
           "require", "optimizer", "with_optimizer", "is_stacked", "has_model_axis", "mask_axis",
           "train_on", "steps_per_epoch", "diverged", "Timer", "result"]
