"""Random-Label (RL): relabel the forget set at random and train on D_r ∪ relabeled D_f.

Definition (`40-methods.md`): every forget example (x, y) gets a random label y' and the model
continues training from θ* with cross-entropy on D_r ∪ {(x, y')}. The official DEL code draws
y' uniformly from all classes (it may equal y); our default draws y' uniformly from the
*other* classes, y' = (y + U{1..C-1}) mod C, so every relabeled example really contradicts its
training label (`allow_true_label=True` gives the official variant).

Source: Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (the random-label
baseline); Fan et al., "SalUn", ICLR 2024 (RL as the basis of SalUn); Torkzadehmahani et al.,
arXiv 2412.02432 (DEL, RL as a localized unlearning algorithm).

Stacked states: each seed draws its own random labels from its own key, so seed i of a stacked
run equals a single run with key i (up to float reassociation under `vmap`).

Defaults (SGD lr 0.01, momentum 0.9, weight decay 5e-4, cosine, 3 epochs, batch 64): on digits
(CNN width 0.5, 10 % IID forget set, 2 seeds) forget accuracy 1.00 -> ~0.97, retain ~0.995,
test ~0.95-0.96 (the retrained oracle: ~0.98 / 1.00 / ~0.97).

This module also holds the training helpers the other "train-style" methods share (config
checks, a cached optimizer, a training loop whose labels may differ per model); they are
candidates for `base.py`.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

from unlearn_jax.methods import base
from unlearn_jax.train import (SCHEDULES, epoch_permutations, make_train_step, num_models,
                               over_models, replicate, resolve_model_axis)

USES_FORGET = True
DEFAULTS = dict(epochs=3, batch_size=64, learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
                schedule="cosine", final_lr_fraction=0.0, allow_true_label=False)


# ---------------------------------------------------------------------------------------------
# Shared helpers (config checks, cached optimizer, keys, per-model-label training loop)
# ---------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def check_sgd_config(name: str, cfg: Mapping[str, Any],
                     batch_keys: tuple = ("batch_size",)) -> None:
  """One-line `MethodConfigError`s naming the method for the usual SGD hyperparameters."""
  req = functools.partial(base.require, name)
  e = cfg["epochs"]
  req(_is_int(e) and e >= 1, f"epochs must be an integer >= 1, got {e!r}")
  for k in batch_keys:
    b = cfg[k]
    req(_is_int(b) and b >= 1, f"{k} must be an integer >= 1, got {b!r}")
  lr = cfg["learning_rate"]
  req(_is_real(lr) and lr > 0, f"learning_rate must be > 0, got {lr!r}")
  if "momentum" in cfg:
    m = cfg["momentum"]
    req(_is_real(m) and 0 <= m < 1, f"momentum must be in [0, 1), got {m!r}")
  if "weight_decay" in cfg:
    wd = cfg["weight_decay"]
    req(_is_real(wd) and wd >= 0, f"weight_decay must be >= 0, got {wd!r}")
  if "schedule" in cfg:
    req(cfg["schedule"] in SCHEDULES,
        f"schedule must be one of {', '.join(SCHEDULES)}, got {cfg['schedule']!r}")
  if "final_lr_fraction" in cfg:
    f = cfg["final_lr_fraction"]
    req(_is_real(f) and 0 <= f <= 1, f"final_lr_fraction must be in [0, 1], got {f!r}")


@functools.lru_cache(maxsize=256)
def _cached_optimizer(learning_rate, momentum, weight_decay, schedule, final_lr_fraction,
                      total_steps, masked):
  cfg = dict(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
             schedule=schedule, final_lr_fraction=final_lr_fraction)
  return base.optimizer(cfg, total_steps, True if masked else None)


def optimizer(cfg: Mapping[str, Any], total_steps: int, mask=None):
  """`base.optimizer`, one object per distinct setting.

  The optimizer is a static part of `TrainState`, so reusing the object lets repeated runs
  with the same configuration (seeds, sweeps, tests) hit the jit cache instead of recompiling.
  """
  return _cached_optimizer(float(cfg["learning_rate"]), float(cfg.get("momentum", 0.9)),
                           float(cfg.get("weight_decay", 0.0)), cfg.get("schedule", "constant"),
                           float(cfg.get("final_lr_fraction", 0.0)), int(total_steps),
                           mask is not None)


def is_stacked(state) -> bool:
  return num_models(state) is not None


def split_key(key, stacked: bool, num: int = 2):
  """`num` keys per model: a tuple of `num` arrays (each `[N, 2]` for a stacked state)."""
  keys = (jax.vmap(lambda k: jax.random.split(k, num)) if stacked else
          (lambda k: jax.random.split(k, num)))(key)
  return tuple(keys[..., i, :] for i in range(num))


def random_labels(key, y, num_classes: int, allow_true_label: bool = False, stacked=False):
  """Random labels for `y`: uniform over the other classes (default) or over all classes.

  With `stacked`, `key` is `[N, 2]` and the result `[N, len(y)]` (one draw per model).
  """
  y = jnp.asarray(y, jnp.int32)

  def one(k):
    if allow_true_label:
      return jax.random.randint(k, y.shape, 0, num_classes, jnp.int32)
    return (y + jax.random.randint(k, y.shape, 1, num_classes, jnp.int32)) % num_classes

  return jax.vmap(one)(key) if stacked else one(key)


def check_forget(name: str, data: base.UnlearnData) -> int:
  n = int(len(data.forget_x))
  base.require(name, n >= 1, "the forget set is empty")
  return n


@functools.lru_cache(maxsize=None)
def _compiled_label_step(train_step_fn, batch_size: int, stacked: bool, mesh, model_axis: str,
                         per_model_labels: bool):
  step = over_models(train_step_fn, model_axis) if stacked else train_step_fn

  def run(state, x, y, perm, i):
    idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size, axis=-1)
    yb = jnp.take_along_axis(y, idx, axis=-1) if per_model_labels else y[idx]
    batch = {"x": x[idx], "y": yb}
    if mesh is not None:
      spec = P(None, "data") if stacked else P("data")
      batch = jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, spec))
    return step(state, batch)

  return jax.jit(run, donate_argnums=(0,))


def fit_labels(state, x, y, *, key, epochs: int, batch_size: int, data: base.UnlearnData,
               train_step_fn) -> Any:
  """`train.fit` whose labels may carry a model axis (`y` of shape `[N, n]` for a stacked state).

  Same data order as `train.fit` (permutation of epoch e from `fold_in(key, e)`, last partial
  batch dropped), so with shared labels it trains exactly like `fit`.
  """
  stacked = is_stacked(state)
  x, y = replicate(jnp.asarray(x), data.mesh), replicate(jnp.asarray(y), data.mesh)
  per_model = stacked and y.ndim == 2
  n = int(x.shape[0])
  steps = base.steps_per_epoch(n, batch_size, data)
  step = _compiled_label_step(train_step_fn, batch_size, stacked, data.mesh,
                              resolve_model_axis(data.model_axis), per_model)
  state = replicate(jax.tree_util.tree_map(jnp.copy, state), data.mesh)
  for epoch in range(epochs):
    perm = epoch_permutations(key, epoch, n=n, stacked=stacked)
    for i in range(steps):
      state, _ = step(state, x, y, perm, i)
  return state


CE_STEP = make_train_step()  # one step function object, so its compilation is reused


def relabel_and_train(state, data: base.UnlearnData, cfg, key, mask=None, *,
                      allow_true_label: bool, info: Optional[dict] = None,
                      extra_example_gradients: int = 0, timer: Optional[base.Timer] = None
                      ) -> base.UnlearnResult:
  """Train on D_r ∪ D_f (D_f with per-model random labels) with CE; the RL/SalUn/amnesiac core."""
  timer = timer or base.Timer().__enter__()
  stacked = is_stacked(state)
  label_key, data_key = split_key(key, stacked)
  fy = random_labels(label_key, data.forget_y, data.num_classes, allow_true_label, stacked)
  ry = jnp.asarray(data.retain_y, jnp.int32)
  if stacked:
    ry = jnp.broadcast_to(ry, (num_models(state), ry.shape[0]))
  y = jnp.concatenate([ry, fy], axis=-1)
  x = data.train_x
  steps = base.steps_per_epoch(int(x.shape[0]), cfg["batch_size"], data)
  tx = optimizer(cfg, cfg["epochs"] * steps, mask)
  state = base.with_optimizer(state, tx, mask)
  state = fit_labels(state, x, y, key=data_key, epochs=cfg["epochs"],
                     batch_size=cfg["batch_size"], data=data, train_step_fn=CE_STEP)
  return base.result(state, timer, epochs=cfg["epochs"], info=info,
                     example_gradients=cfg["epochs"] * steps * cfg["batch_size"]
                     + extra_example_gradients)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_sgd_config("random_label", cfg)
  check_forget("random_label", data)
  base.require("random_label", data.num_classes >= 2, "needs at least 2 classes")
  with base.Timer() as timer:
    return relabel_and_train(state, data, cfg, key, mask,
                             allow_true_label=bool(cfg["allow_true_label"]), timer=timer)
