"""ℓ1-sparse unlearning: finetune on D_r with a linearly decaying ℓ1 penalty on the weights.

Definition (`40-methods.md`): continue training θ* on the retain set with
    L_t(θ) = CE(B_r; θ) + γ_t · ‖θ‖₁,      γ_t = γ · (1 − t / T),
where t is the optimizer step (0-based) and T the total number of steps, so the penalty decays
linearly from γ to 0 over the run. ‖θ‖₁ sums |θ| over every parameter (all layers, norm scales
and biases included, as in the official code). D_f is never read.

`penalty_decay="epoch"` steps the coefficient once per epoch instead, γ_e = γ · (1 − e / E) for
epoch e = 0 .. E-1 (constant within an epoch), as the public code does
(OPTML-Group/Unlearn-Sparse `unlearn/FT.py`: `alpha * (1 - epoch / unlearn_epochs)`).

Source: Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023 ("ℓ1-sparse
MU"; γ ≈ 5e-5 to 1e-4 with linear decay).

VECTORIZED: a `base.PerModel` γ (and learning rate) gives every model of a stacked state its own
value, so a grid over them trains in one program (`_per_model_fit`: the same batches and loss,
γ passed to the step as a per-model value instead of a compile-time constant).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unlearn_jax.methods import base, common
from unlearn_jax.train import (cross_entropy, epoch_order, make_train_step, over_models,
                               replicate, resolve_model_axis)

USES_FORGET = False
VECTORIZED = ("learning_rate", "gamma")
DEFAULTS = dict(gamma=5e-5, epochs=5, batch_size=64, learning_rate=0.01, momentum=0.9,
                weight_decay=5e-4, schedule="cosine", final_lr_fraction=0.0, penalty_decay="step")
PENALTY_DECAYS = ("step", "epoch")


def l1_norm(params) -> jax.Array:
  return sum(jnp.sum(jnp.abs(p)) for p in jax.tree_util.tree_leaves(params))


def l1_coefficient(gamma, step, total_steps, epoch_steps: int = 1):
  """γ_t = γ · (1 − t / T), clipped at 0 past T; with `epoch_steps` = S > 1, t and T count
  epochs (t = ⌊step / S⌋, T = total_steps / S), i.e. the per-epoch decay."""
  t = (step // epoch_steps).astype(jnp.float32)
  return gamma * jnp.maximum(0.0, 1.0 - t / (total_steps // epoch_steps))


@functools.lru_cache(maxsize=64)
def l1_step(gamma: float, total_steps: int, epoch_steps: int = 1):
  """The train step for one (γ, T, S), cached so repeated runs reuse its compilation."""

  def objective(logits, labels, params, step):
    coef = l1_coefficient(gamma, step, total_steps, epoch_steps)
    return cross_entropy(logits, labels) + coef * l1_norm(params)

  return make_train_step(objective)


@functools.lru_cache(maxsize=None)
def _compiled_per_model_step(total_steps: int, batch_size: int, model_axis: str, mesh,
                             epoch_steps: int = 1):
  """Jitted epoch step of a stacked state with one γ per model (`gammas` [N])."""

  def one(state, batch, gamma):
    def objective(logits, labels, params, step):
      coef = l1_coefficient(gamma, step, total_steps, epoch_steps)
      return cross_entropy(logits, labels) + coef * l1_norm(params)
    return make_train_step(objective)(state, batch)

  step = over_models(one, model_axis, in_axes=(0, 0, 0))

  def run(state, x, y, perm, i, gammas):
    idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size, axis=-1)
    batch = common.constrain_batch({"x": x[idx], "y": y[idx]}, mesh, True)
    return step(state, batch, gammas)

  return jax.jit(run, donate_argnums=(0,))


def _per_model_fit(state, data: base.UnlearnData, gammas, *, key, epochs: int, batch_size: int,
                   total_steps: int, epoch_steps: int = 1):
  """`train.fit` over the retain set with the ℓ1 objective and one γ per model."""
  x, y = replicate(jnp.asarray(data.retain_x), data.mesh), replicate(jnp.asarray(data.retain_y),
                                                                    data.mesh)
  n = data.num_retain
  steps = base.steps_per_epoch(n, batch_size, data)
  fn = _compiled_per_model_step(int(total_steps), int(batch_size),
                                resolve_model_axis(data.model_axis), data.mesh, int(epoch_steps))
  state = common.fresh_copy(state)
  for epoch in range(epochs):
    perm = epoch_order(key, epoch, n=n, stacked=True, subsets=data.retain_index)
    for i in range(steps):
      state, _ = fn(state, x, y, perm, i, gammas)
  return state


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("l1_sparse", cfg)
  g = cfg["gamma"]
  base.require("l1_sparse", common.is_real(g) and g >= 0, f"gamma must be >= 0, got {g!r}")
  base.require("l1_sparse", cfg["penalty_decay"] in PENALTY_DECAYS,
               f"penalty_decay must be one of {', '.join(PENALTY_DECAYS)}, got "
               f"{cfg['penalty_decay']!r}")
  if data is not None:
    common.check_batch("l1_sparse", "batch_size", "retain", cfg["batch_size"],
                       data.num_retain)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  base.check_split(data, state)
  g = cfg["gamma"]
  with base.Timer() as timer:
    steps = base.steps_per_epoch(data.num_retain, cfg["batch_size"], data)
    total = cfg["epochs"] * steps
    tx = base.optimizer(cfg, total, mask)
    state = base.with_optimizer(state, tx, mask)
    gammas, per_model = base.per_model_values(g, base.num_models(state))
    if per_model:
      state = _per_model_fit(state, data, gammas, key=key, epochs=cfg["epochs"],
                             batch_size=cfg["batch_size"], total_steps=total,
                             epoch_steps=steps if cfg["penalty_decay"] == "epoch" else 1)
      return base.result(state, timer, example_gradients=total * cfg["batch_size"],
                         epochs=cfg["epochs"])
    state = base.train_on(state, data.retain, key=key, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], data=data,
                          train_step_fn=l1_step(float(g), int(total),
                                                steps if cfg["penalty_decay"] == "epoch" else 1))
  return base.result(state, timer, example_gradients=total * cfg["batch_size"],
                     epochs=cfg["epochs"])
