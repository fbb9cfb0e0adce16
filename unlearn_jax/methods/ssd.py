"""Selective Synaptic Dampening (SSD): shrink parameters far more important to D_f than to D.

Foster, Schoepf, Brintrup, "Fast Machine Unlearning Without Retraining Through Selective Synaptic
Dampening", AAAI 2024 (arXiv 2308.07707; code github.com/if-loops/selective-synaptic-dampening,
`ssd.ParameterPerturber`). `40-methods.md`. No training.

1. Importances (diagonal Fisher approximation, as `calc_importance` of the reference code): for a
   dataset split into consecutive batches B_1 .. B_K (batch_size, the last one partial), with the
   model in inference mode (BatchNorm running statistics),

     I = 1/K * sum_k (grad_θ mean_{i in B_k} CE(f(x_i; θ*), y_i))^2      (element-wise square)

   i.e. the mean over batches of the squared gradient of the *batch-mean* loss (not a per-example
   Fisher). I_D is computed over D = D_r ∪ D_f (retain rows, then forget rows, unshuffled as the
   reference concatenated loader), I_f over D_f.
2. Selection and dampening (`dampen`): for every parameter element with I_f > a · I_D,

     θ <- θ · min(1, λ · I_D / I_f);

   every other element stays bit-identical. Defaults a = 10 (`selection`), λ = 1 (`dampening`)
   (reference code; DEL's sweeps used a ∈ {1, 16}, λ ∈ {1, 3}).

SSD targets forget sets whose importances stand out (classes, sub-classes). For a 10 % iid forget
set of digits (CNN width 0.5) the defaults select 0-0.05 % of the parameters and change nothing;
a = 6, λ = 1.5 dampens 0.2-1.2 % (forget accuracy 96-100 %, retain >= 99 %), a = 5 already costs
5-8 points of retain accuracy, a = 1 collapses the model (retain 20-69 %).

Every parameter leaf takes part (convolution kernels, BatchNorm scales/biases, the classifier),
as in the reference code's loop over `named_parameters()`; BatchNorm running statistics are not
parameters and stay unchanged. A mask (`10-del.md` §6) further restricts dampening to masked
elements. Cost: one gradient per example of D and of D_f (|D| + |D_f| example passes); `epochs`
is recorded as 0 (no training epochs).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax import masking
from unlearn_jax.methods import base, common
from unlearn_jax.train import TrainState

USES_FORGET = True
DEFAULTS = dict(
    selection=10.0,          # a: select where I_f > a * I_D (reference: selection_weighting)
    dampening=1.0,           # λ: scale selected elements by min(1, λ * I_D / I_f)
    batch_size=64,           # batches of the importance passes (the estimate depends on it)
)


def dampen(params, importance_all, importance_forget, *, selection: float, dampening: float,
           mask=None):
  """SSD's parameter update, a pure function of parameters and importances.

  Args:
    params: a parameter pytree θ.
    importance_all, importance_forget: I_D and I_f, pytrees of θ's structure (non-negative).
    selection: a > 0; an element is selected where I_f > a * I_D.
    dampening: λ > 0; a selected element becomes θ * min(1, λ * I_D / I_f).
    mask: optional element-wise mask of θ's structure; only elements where it is True / non-zero
      may be selected.

  Returns:
    (new_params, selected): unselected elements are returned bit-identical (`jnp.where`);
    `selected` is a bool pytree of the chosen elements.
  """

  def one(p, i_d, i_f, m):
    chosen = i_f > selection * i_d
    if m is not None:
      chosen = jnp.logical_and(chosen, jnp.asarray(m) != 0)
    safe_f = jnp.where(chosen, i_f, 1.0)            # i_f > 0 wherever chosen
    factor = jnp.minimum(1.0, dampening * i_d / safe_f).astype(p.dtype)
    return jnp.where(chosen, p * factor, p), chosen

  masking.check_mask(importance_all, params, what="importance_all")
  masking.check_mask(importance_forget, params, what="importance_forget")
  if mask is None:
    pairs = jax.tree_util.tree_map(lambda p, a, f: one(p, a, f, None), params, importance_all,
                                   importance_forget)
  else:
    masking.check_mask(mask, params)
    pairs = jax.tree_util.tree_map(one, params, importance_all, importance_forget, mask)
  outer = jax.tree_util.tree_structure(params)
  inner = jax.tree_util.tree_structure((0, 0))
  new_params, selected = jax.tree_util.tree_transpose(outer, inner, pairs)
  return new_params, selected


def importance(state: TrainState, x, y, *, batch_size: int, model_axis: str = "auto",
               index=None):
  """Mean over consecutive batches of the squared gradient of the batch-mean cross-entropy.

  Batches are rows [0, b), [b, 2b), ... of (x, y), the last one partial (as a PyTorch loader
  without `drop_last`); the model runs in inference mode. Returns a pytree of the params'
  structure (with a leading model axis for a stacked state). `index` (`[N, n]`): model k's
  batches are its own rows `index[k]` (`common.row_chunks`).
  """
  total = common.float32_zeros(state.params)
  k = 0
  for g, m in common.chunk_gradients(state.params, state.model_state, state.apply_fn, x, y,
                                     batch_size=batch_size, stacked=base.is_stacked(state),
                                     model_axis=model_axis, index=index):
    total = _add_squared_mean(total, g, jnp.float32(m))
    k += 1
  return common.scale_tree(total, jnp.float32(1.0 / k))


@functools.partial(jax.jit, donate_argnums=(0,))
def _add_squared_mean(total, grad_sum, m):
  """total + (grad_sum / m)^2: the squared gradient of a batch's mean loss."""
  return jax.tree_util.tree_map(lambda t, g: t + jnp.square(g / m), total, grad_sum)


@functools.lru_cache(maxsize=None)
def _compiled_dampen(selection: float, dampening: float, stacked: bool, mask_axis):
  """Jitted `dampen` (vmapped over models for a stacked state) that also counts the selected
  elements (per model)."""

  def one(params, i_all, i_forget, mask):
    new, selected = dampen(params, i_all, i_forget, selection=selection, dampening=dampening,
                           mask=mask)
    return new, sum(jnp.sum(s) for s in jax.tree_util.tree_leaves(selected))

  return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, mask_axis)) if stacked else one)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  base.require("ssd", common.is_real(cfg["selection"]) and cfg["selection"] > 0, f"selection (a) must be > 0, got {cfg['selection']}")
  base.require("ssd", common.is_real(cfg["dampening"]) and cfg["dampening"] > 0,
               f"dampening (lambda) must be > 0, got {cfg['dampening']}")
  base.require("ssd", int(cfg["batch_size"]) == cfg["batch_size"] and cfg["batch_size"] >= 1,
               f"batch_size must be an integer >= 1, got {cfg['batch_size']}")
  if data is not None:
    base.require("ssd", data.num_forget >= 1,
                 "the forget set is empty; there is nothing to dampen")


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  del key  # deterministic: no randomness
  check_config(cfg, data)
  base.check_split(data, state)
  nr, nf = data.num_retain, data.num_forget
  leaves = jax.tree_util.tree_leaves(state.params)
  base.require("ssd", len(leaves) > 0 and all(jnp.issubdtype(l.dtype, jnp.floating)
                                                for l in leaves),
               "needs a model with floating-point parameters (it has none or non-float ones)")
  with base.Timer() as timer:
    stacked = base.is_stacked(state)
    bs = int(cfg["batch_size"])
    train = data.train
    i_all = importance(state, train.x, train.y, batch_size=bs, model_axis=data.model_axis,
                       index=train.index)
    i_forget = importance(state, data.forget_x, data.forget_y, batch_size=bs,
                          model_axis=data.model_axis, index=data.forget_index)
    fn = _compiled_dampen(float(cfg["selection"]), float(cfg["dampening"]), stacked,
                          base.mask_axis(mask, state))
    params, counts = fn(state.params, i_all, i_forget, mask)
    new_state = state.replace(params=params)
    total = sum(int(np.prod(l.shape[1:] if stacked else l.shape)) for l in leaves)
  info = {"selected_fraction": np.asarray(counts) / total,
          "importance_batches_all": math.ceil((nr + nf) / bs),
          "importance_batches_forget": math.ceil(nf / bs)}
  return base.result(new_state, timer, example_gradients=nr + nf + nf, epochs=0, info=info)

