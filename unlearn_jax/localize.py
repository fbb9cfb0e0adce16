"""Parameter localization: criticality scores, channel aggregation and budget masks.

Implements the localization half of DEL (Torkzadehmahani et al., "Improved Localized Machine
Unlearning Through the Lens of Memorization", arXiv 2412.02432):

* Sec. 1, criticality scores on the forget set D_f, from mini-batch gradients at the trained θ*:
  ``grad`` s = |Σ_B ∇θ L_B(θ*)| (SalUn's criterion), ``weighted_grad`` s = |Σ_B θ* ⊙ ∇θ L_B(θ*)|
  (DEL), ``weight`` s = |θ*|; ``weighted_grad_all`` is ``weighted_grad`` computed on the whole
  training set (the caller passes that set as the data).
* Sec. 2, channel aggregation (``aggregate_channels``): one score per output channel, the mean of
  its h largest element scores, broadcast back to the channel's elements.
* Sec. 3, one global budget (``global_top_fraction_mask``): the top floor(α · P) of all P scores.
* Sec. 5, SalUn's mask ``salloc`` (``salun_mask``): ``grad`` scores, element granularity, top-α.

Kernels are model-agnostic: they take ``loss_fn(params, batch) -> scalar`` with
``batch = (x_batch, y_batch)`` and plain pytrees. ``loss_fn`` should be the *mean* loss over the batch
with the model in inference mode (BatchNorm on running statistics): close over ``batch_stats``.
Scores are pytrees of float32 with the structure of ``params``; masks are bool pytrees
(see ``unlearn_jax.masking``).
"""

from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "CRITERIA",
  "TOP_H_CHOICES",
  "GRANULARITIES",
  "iterate_batches",
  "batch_gradient_sum",
  "scores_from_gradient",
  "criticality_scores",
  "channel_top_h",
  "aggregate_channels",
  "channel_layout",
  "budget_count",
  "global_top_fraction_mask",
  "localization_mask",
  "salun_mask",
]

PyTree = Any
LossFn = Callable[[PyTree, Any], jax.Array]

CRITERIA = ("grad", "weighted_grad", "weighted_grad_all", "weight")
TOP_H_CHOICES = ("ten_percent_of_channels", "all")
GRANULARITIES = ("param", "channel")


# --------------------------------------------------------------------------------------------
# Sec. 1: criticality scores
# --------------------------------------------------------------------------------------------


def iterate_batches(x: Any, y: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
  """Consecutive ``(x[i:i+b], y[i:i+b])`` batches, the last partial batch included."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  n = len(x)
  if len(y) != n:
    raise ValueError(f"x and y have different lengths: {n} vs {len(y)}")
  for start in range(0, n, batch_size):
    yield x[start : start + batch_size], y[start : start + batch_size]


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def _accumulate_grad(loss_fn: LossFn, acc: PyTree, params: PyTree, batch: Any) -> PyTree:
  # Jitted once per (loss_fn, shapes): a full and a last partial batch give two compilations;
  # loss_fn is a static argument hashed by identity, so repeated calls reuse the cache.
  g = jax.grad(loss_fn)(params, batch)
  return jax.tree_util.tree_map(lambda a, gi: a + gi.astype(jnp.float32), acc, g)


def batch_gradient_sum(loss_fn: LossFn, params: PyTree, batches: Iterable[Any]) -> PyTree:
  """Σ_B ∇θ loss_fn(θ, B) over an iterable of batches, accumulated in float32.

  The gradient step is jitted (with ``loss_fn`` static) and reused for every batch; pass the same
  ``loss_fn`` object across calls to avoid recompiling. Raises ValueError if ``batches`` is empty.
  """
  acc = jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params)
  n_batches = 0
  for batch in batches:
    acc = _accumulate_grad(loss_fn, acc, params, batch)
    n_batches += 1
  if n_batches == 0:
    raise ValueError("no batches: the data to score is empty")
  return acc


def _check_criterion(criterion: str) -> None:
  if criterion not in CRITERIA:
    raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")


def scores_from_gradient(params: PyTree, grad_sum: PyTree | None, criterion: str) -> PyTree:
  """Turns a summed gradient into criticality scores (float32, structure of ``params``).

  ``grad``: |g|; ``weighted_grad`` / ``weighted_grad_all``: |θ ⊙ g|; ``weight``: |θ| (``grad_sum``
  unused, may be None). The absolute value is taken once, after the sum (DEL Sec. 1). Useful with
  gradients summed elsewhere, e.g. from per-example gradients.
  """
  _check_criterion(criterion)
  f32 = lambda a: jnp.asarray(a).astype(jnp.float32)
  if criterion == "weight":
    return jax.tree_util.tree_map(lambda p: jnp.abs(f32(p)), params)
  if criterion == "grad":
    return jax.tree_util.tree_map(lambda g: jnp.abs(f32(g)), grad_sum)
  return jax.tree_util.tree_map(lambda p, g: jnp.abs(f32(p) * f32(g)), params, grad_sum)


def criticality_scores(
  loss_fn: LossFn,
  params: PyTree,
  x: Any,
  y: Any,
  criterion: str = "weighted_grad",
  batch_size: int = 128,
) -> PyTree:
  """Element-wise criticality scores of ``params`` on the data ``(x, y)`` (DEL Sec. 1).

  The data is cut into consecutive batches of ``batch_size`` and *every* example is used (the last
  partial batch too, unlike the official code which drops it); each batch is passed to ``loss_fn``
  as ``(x_batch, y_batch)``.

  Args:
    loss_fn: ``loss_fn(params, (x_batch, y_batch)) -> scalar`` mean loss, model in inference mode.
    params: the trained parameters θ*.
    x, y: the forget set (or, for ``weighted_grad_all``, the whole training set); indexable arrays.
      Ignored (may be None) for ``weight``.
    criterion: one of ``CRITERIA``.
    batch_size: mini-batch size B.

  Returns:
    Float32 scores with the structure of ``params``.
  """
  _check_criterion(criterion)
  if criterion == "weight":
    return scores_from_gradient(params, None, criterion)
  grad_sum = batch_gradient_sum(loss_fn, params, iterate_batches(x, y, batch_size))
  return scores_from_gradient(params, grad_sum, criterion)


# --------------------------------------------------------------------------------------------
# Sec. 2: channel aggregation
# --------------------------------------------------------------------------------------------


def channel_top_h(top_h: str | float, c_out: int, row_length: int) -> int:
  """Number h of largest entries averaged per output channel.

  ``'ten_percent_of_channels'``: floor(0.1 · C_out) (official ResNet choice, 10 % of the number of
  output channels), clipped to [1, row_length]; ``'all'``: row_length (plain mean, official ViT
  choice); a float f in (0, 1]: max(1, floor(f · row_length)).
  """
  if isinstance(top_h, str):
    if top_h == "ten_percent_of_channels":
      return int(min(max(c_out // 10, 1), row_length))
    if top_h == "all":
      return int(row_length)
  elif isinstance(top_h, (float, np.floating)) and 0.0 < float(top_h) <= 1.0:
    return int(max(1, math.floor(float(top_h) * row_length)))
  raise ValueError(
    f"top_h must be one of {', '.join(map(repr, TOP_H_CHOICES))} or a float in (0, 1], got {top_h!r}"
  )


# Leaf names that hold one value per unit of their layer (biases, norm scales/offsets): they keep
# their element scores whatever their rank (e.g. an attention bias `[heads, head_dim]`).
ELEMENTWISE_LEAVES = ("bias", "scale", "offset", "mean", "var")
# Path components of Flax attention projections whose kernels are `[in, heads, head_dim]`.
ATTENTION_INPUT_PROJECTIONS = ("query", "key", "value")


def channel_layout(path: tuple | str, shape: tuple) -> tuple[str, int]:
  """How a parameter tensor splits into output channels (DEL §2, `10-del.md` §2).

  An output channel is one output unit of the layer (what one row of the PyTorch weight
  `[out, ...]` holds). Returns `(kind, k)`:

  * `("elementwise", 0)`: tensors with fewer than 2 dimensions and every leaf named like a bias
    or norm parameter (`ELEMENTWISE_LEAVES`, e.g. an attention bias `[heads, head_dim]`);
  * `("trailing", 2)`: Flax attention query/key/value kernels `[in, heads, head_dim]`, whose
    heads·head_dim output units are the last two axes;
  * `("leading", 1)`: embedding-like tensors with a leading axis of 1 (`cls_token`,
    `pos_embed` `[1, tokens, dim]`), viewed as the official `view(shape[0], -1)`;
  * `("trailing", 1)`: every other tensor: conv kernels `[kh, kw, C_in, C_out]`, dense kernels
    `[in, out]`, the attention output kernel `[heads, head_dim, out]`: the last axis.
  """
  parts = [str(p) for p in (path.split("/") if isinstance(path, str) else
                            (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))
                             for k in path))]
  leaf = parts[-1] if parts else ""
  if len(shape) < 2 or leaf in ELEMENTWISE_LEAVES:
    return "elementwise", 0
  if len(shape) == 3 and leaf == "kernel" and any(p in ATTENTION_INPUT_PROJECTIONS
                                                  for p in parts[:-1]):
    return "trailing", 2
  if shape[0] == 1 and leaf != "kernel":
    return "leading", 1
  return "trailing", 1


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _channel_mean_top_h(s: jax.Array, kind: str, k: int, h: int) -> jax.Array:
  if kind == "leading":
    rows = s.reshape(s.shape[0], -1)  # [C_out, row_length]
    channel = jnp.mean(jax.lax.top_k(rows, h)[0], axis=-1)
    return jnp.broadcast_to(channel[:, None], rows.shape).reshape(s.shape)
  out_shape = s.shape[len(s.shape) - k:]
  rows = s.reshape(-1, math.prod(out_shape)).T  # [C_out, row_length]: one row per output unit
  channel = jnp.mean(jax.lax.top_k(rows, h)[0], axis=-1)  # [C_out]
  return jnp.broadcast_to(channel.reshape(out_shape), s.shape)


def aggregate_channels(scores: PyTree, top_h: str | float = "ten_percent_of_channels") -> PyTree:
  """Channel-level scores (DEL Sec. 2): the mean of each output channel's h largest scores.

  Output channels follow `channel_layout` of each leaf's path and shape: the last axis of conv
  and dense kernels (Flax `[kh, kw, C_in, C_out]`, `[in, out]`), heads·head_dim units of
  attention query/key/value kernels `[in, heads, head_dim]`, the leading axis of `cls_token` /
  `pos_embed`. The leaf is viewed as one row per output channel and every element of a channel
  receives the mean of the h largest entries of its row (h from ``channel_top_h``). Biases and
  norm parameters (and any leaf with ``ndim < 2``) keep their element scores.

  Args:
    scores: float pytree of element scores (the structure and leaf names of the params).
    top_h: ``'ten_percent_of_channels'``, ``'all'`` or a float fraction of the row length.

  Returns:
    Float32 pytree of the same structure and shapes.
  """
  channel_top_h(top_h, 10, 10)  # validate once, even for trees without matrices

  def one(path, s):
    s = jnp.asarray(s, jnp.float32)
    kind, k = channel_layout(path, s.shape)
    if kind == "elementwise" or s.size == 0:
      return s
    c_out = s.shape[0] if kind == "leading" else math.prod(s.shape[len(s.shape) - k:])
    return _channel_mean_top_h(s, kind, k, channel_top_h(top_h, c_out, s.size // c_out))

  return jax.tree_util.tree_map_with_path(one, scores)


# --------------------------------------------------------------------------------------------
# Sec. 3: global budget
# --------------------------------------------------------------------------------------------


def _check_alpha(alpha: float) -> float:
  if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
    raise ValueError(f"budget alpha must be in (0, 1], got {alpha!r}")
  a = float(alpha)
  if not 0.0 < a <= 1.0:  # also rejects NaN
    raise ValueError(f"budget alpha must be in (0, 1], got {alpha!r}")
  return a


def budget_count(alpha: float, num_params: int) -> int:
  """floor(α · P), computed exactly on α's shortest decimal form (0.29 · 100 gives 29, not 28)."""
  a = _check_alpha(alpha)
  return int(math.floor(Fraction(repr(a)) * int(num_params)))


@jax.jit
def _top_k_flat(flat: jax.Array, k: jax.Array) -> jax.Array:
  # Descending by score, ties by ascending flat index: stable ascending argsort of -score.
  # where() maps -0.0 to +0.0 so signed zeros tie too; NaN scores sort last (picked only after
  # every real score).
  # k is traced, so one compilation serves every budget for a given P.
  neg = jnp.where(flat == 0, jnp.zeros_like(flat), -flat)
  order = jnp.argsort(neg, stable=True)
  rank = jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32))
  return rank < k


def global_top_fraction_mask(scores: PyTree, alpha: float) -> PyTree:
  """Bool mask of exactly floor(α · P) elements with the largest scores over the whole tree (DEL Sec. 3).

  All leaves (classifier and norm layers included) compete in one ranking; there is no per-layer
  quota. Flat indices follow ``jax.tree_util.tree_leaves`` order, each leaf raveled C-order; equal
  scores are broken toward the lowest flat index, so the same inputs always give the same mask.
  If floor(α · P) == 0 the mask is all False (nothing may change); ``budget_count`` gives the count.

  Args:
    scores: pytree of real-valued scores.
    alpha: budget, a Python float in (0, 1] (ValueError otherwise).

  Returns:
    Bool pytree with the structure and shapes of ``scores``.
  """
  _check_alpha(alpha)
  leaves, treedef = jax.tree_util.tree_flatten(scores)
  leaves = [jnp.asarray(l, jnp.float32) for l in leaves]
  sizes = [l.size for l in leaves]
  total = int(sum(sizes))
  k = budget_count(alpha, total)
  if total == 0:
    return jax.tree_util.tree_unflatten(treedef, [jnp.zeros(l.shape, bool) for l in leaves])
  flat_mask = _top_k_flat(jnp.concatenate([l.ravel() for l in leaves]), jnp.asarray(k, jnp.int32))
  out = []
  offsets = np.cumsum([0] + sizes)
  for l, start, stop in zip(leaves, offsets[:-1], offsets[1:]):
    out.append(flat_mask[start:stop].reshape(l.shape))
  return jax.tree_util.tree_unflatten(treedef, out)


# --------------------------------------------------------------------------------------------
# Secs. 1-3 and 5 together
# --------------------------------------------------------------------------------------------


def localization_mask(
  loss_fn: LossFn,
  params: PyTree,
  x: Any,
  y: Any,
  alpha: float = 0.3,
  criterion: str = "weighted_grad",
  granularity: str = "channel",
  top_h: str | float = "ten_percent_of_channels",
  batch_size: int = 128,
) -> PyTree:
  """Scores, optional channel aggregation, then the global top-α mask (DEL Secs. 1-3).

  Defaults are DEL's choice (``weighted_grad``, ``channel``, h = 10 % of output channels, α = 0.3).
  The classifier is *not* added here: for Reset + Finetune use
  ``masking.always_trainable(mask, ...)`` on the finetuning mask.
  """
  if granularity not in GRANULARITIES:
    raise ValueError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
  _check_alpha(alpha)
  scores = criticality_scores(loss_fn, params, x, y, criterion, batch_size)
  if granularity == "channel":
    scores = aggregate_channels(scores, top_h)
  return global_top_fraction_mask(scores, alpha)


def salun_mask(
  loss_fn: LossFn, params: PyTree, x: Any, y: Any, alpha: float, batch_size: int = 128
) -> PyTree:
  """SalUn's saliency mask (DEL Sec. 5 ``salloc``): ``grad`` scores, element granularity, top-α."""
  return localization_mask(
    loss_fn, params, x, y, alpha, criterion="grad", granularity="param", batch_size=batch_size
  )
