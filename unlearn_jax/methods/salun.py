"""SalUn: Random-Label unlearning restricted to the salient parameters.

Definition (`40-methods.md`, `10-del.md` §5 `salloc`): per model, the saliency score of every
parameter element is s = |Σ_B ∇θ CE_B(θ*)| over mini-batches B of the forget set, with the model
in inference mode (BatchNorm on running statistics); the mask m marks the global top
floor(α·P) elements (element granularity, no per-layer quota, `localize.salun_mask`). Then
`random_label` runs with updates confined to m: D_f relabeled at random, training on
D_r ∪ relabeled D_f with cross-entropy. With a user mask as well, only the intersection
(user mask ∧ saliency mask) may change.

Source: Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
Both Image Classification and Generation", ICLR 2024 (α = 0.5 is their common choice);
`localize` implements the scores (DEL, arXiv 2412.02432, Sec. 3 `salloc`).

Stacked states get one mask per model, computed from that model's own weights and BatchNorm
statistics. `info["mask_fraction"]` records the fraction of parameters each model may change.
This module also holds `localization_masks`, the per-model localization `del` uses.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unlearn_jax import localize, masking
from unlearn_jax.methods import base
from unlearn_jax.methods.random_label import (_is_real, check_forget, check_sgd_config,
                                              is_stacked, relabel_and_train)
from unlearn_jax.train import cross_entropy, num_models, over_models, resolve_model_axis

USES_FORGET = True
DEFAULTS = dict(alpha=0.5, mask_batch_size=128, epochs=3, batch_size=64, learning_rate=0.01,
                momentum=0.9, weight_decay=5e-4, schedule="cosine", final_lr_fraction=0.0,
                allow_true_label=False)


# ---------------------------------------------------------------------------------------------
# Per-model localization (shared with `del`)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _compiled_grad_accumulate(apply_fn, stacked: bool, model_axis: str):
  """acc + ∇θ mean-CE(batch) with the model in inference mode (model_state closed over)."""

  def one(acc, params, model_state, x, y):
    def loss(p):
      return cross_entropy(apply_fn(p, model_state, x, False)[0], y)

    g = jax.grad(loss)(params)
    return jax.tree_util.tree_map(lambda a, gi: a + gi.astype(jnp.float32), acc, g)

  fn = over_models(one, model_axis, in_axes=(0, 0, 0, None, None)) if stacked else one
  return jax.jit(fn, donate_argnums=(0,))


def gradient_sum(state, x, y, *, batch_size: int, model_axis: str = "auto"):
  """Σ_B ∇θ CE_B(θ) per model over consecutive batches of (x, y), every example used.

  The same sum as `localize.batch_gradient_sum` with an inference-mode CE loss, but one compiled
  function serves every model and every call (the loss does not close over per-model state).
  """
  stacked = is_stacked(state)
  fn = _compiled_grad_accumulate(state.apply_fn, stacked, resolve_model_axis(model_axis))
  acc = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
  x, y = jnp.asarray(x), jnp.asarray(y, jnp.int32)
  for xb, yb in localize.iterate_batches(x, y, batch_size):
    acc = fn(acc, state.params, state.model_state, xb, yb)
  return acc


def localization_masks(state, x, y, *, alpha: float, criterion: str = "weighted_grad",
                       granularity: str = "channel", top_h="ten_percent_of_channels",
                       batch_size: int = 128, model_axis: str = "auto"):
  """`localize.localization_mask` per model on (x, y): scores (DEL §1), optional channel
  aggregation (§2), global top-α (§3). Returns a bool mask with the state's model axis."""
  if granularity not in localize.GRANULARITIES:
    raise ValueError(f"unknown granularity {granularity!r}; valid: "
                     f"{', '.join(localize.GRANULARITIES)}")
  grads = None
  if criterion != "weight":
    grads = gradient_sum(state, x, y, batch_size=batch_size, model_axis=model_axis)

  def one(params, g):
    scores = localize.scores_from_gradient(params, g, criterion)
    if granularity == "channel":
      scores = localize.aggregate_channels(scores, top_h)
    return localize.global_top_fraction_mask(scores, alpha)

  if not is_stacked(state):
    return one(state.params, grads)
  take = lambda tree, i: None if tree is None else jax.tree_util.tree_map(lambda a: a[i], tree)
  masks = [one(take(state.params, i), take(grads, i)) for i in range(num_models(state))]
  return jax.tree_util.tree_map(lambda *m: jnp.stack(m), *masks)


def per_model_mask(mask, state):
  """A user mask with the state's model axis (broadcast if it has none)."""
  if mask is None or not is_stacked(state):
    return mask
  m0, p0 = jax.tree_util.tree_leaves(mask)[0], jax.tree_util.tree_leaves(state.params)[0]
  if jnp.ndim(m0) == jnp.ndim(p0):
    return mask
  n = num_models(state)
  return jax.tree_util.tree_map(lambda m: jnp.broadcast_to(m, (n, *jnp.shape(m))), mask)


def mask_fractions(mask, state) -> list:
  """Fraction of selected parameters, one float per model."""
  if not is_stacked(state):
    return [masking.mask_fraction(mask)]
  return [masking.mask_fraction(jax.tree_util.tree_map(lambda m: m[i], mask))
          for i in range(num_models(state))]


def check_alpha(name: str, alpha) -> None:
  base.require(name, _is_real(alpha) and 0 < alpha <= 1, f"alpha must be in (0, 1], got {alpha!r}")


# ---------------------------------------------------------------------------------------------
# SalUn
# ---------------------------------------------------------------------------------------------


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_sgd_config("salun", cfg, batch_keys=("batch_size", "mask_batch_size"))
  check_alpha("salun", cfg["alpha"])
  n_f = check_forget("salun", data)
  with base.Timer() as timer:
    saliency = localization_masks(state, data.forget_x, data.forget_y, alpha=float(cfg["alpha"]),
                                  criterion="grad", granularity="param",
                                  batch_size=int(cfg["mask_batch_size"]),
                                  model_axis=data.model_axis)
    salient_fraction = mask_fractions(saliency, state)
    if mask is not None:
      saliency = masking.mask_intersection(per_model_mask(mask, state), saliency)
    info = {"saliency_fraction": salient_fraction,
            "mask_fraction": mask_fractions(saliency, state)}
    return relabel_and_train(state, data, cfg, key, saliency,
                             allow_true_label=bool(cfg["allow_true_label"]), info=info,
                             extra_example_gradients=n_f, timer=timer)
