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
* Sec. 1 with per-example gradients (``per_example_scores``, via ``unlearn_jax.pex``):
  ``sum_then_abs`` |θ ⊙ Σ_i g_i| (the batch score up to a constant) and ``abs_then_sum``
  Σ_i |θ ⊙ g_i| (examples cannot cancel).
* Sec. 5, baselines at the same budget: ``random_mask`` (random elements or random output
  channels), ``layer_depth_mask`` (``shallowest`` / ``deepest`` whole layers, depth from
  ``forward_order``), ``critmem_mask`` (Maini et al. 2023: per-example greedy removal of units
  until the prediction flips; its own budget).

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
from jax.extend import core as jcore

from unlearn_jax import pex
from unlearn_jax.masking import keypath_str

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
  "AGGREGATIONS",
  "per_example_scores",
  "channel_ids",
  "random_scores",
  "random_mask",
  "forward_order",
  "layer_depth_mask",
  "CRITMEM_UNITS",
  "critical_units",
  "critmem_mask",
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
# Leaf names of embedding tables (`nn.Embed`: `[num_embeddings, features]`, one unit per row).
EMBEDDING_LEAVES = ("embedding",)
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
  * `("leading", 1)`: embedding-like tensors, laid out as in PyTorch (Flax transposes only
    kernels): a leading axis of 1 (`cls_token`, `pos_embed` `[1, tokens, dim]`) or an
    embedding table (`EMBEDDING_LEAVES`, `[vocab, dim]`: one unit per row), viewed as the
    official `view(shape[0], -1)`;
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
  if leaf != "kernel" and (shape[0] == 1 or leaf in EMBEDDING_LEAVES):
    # laid out as in PyTorch (Flax transposes only kernels): the official view(shape[0], -1)
    # (cls_token / pos_embed `[1, ...]`: one channel; an embedding table: one per row)
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


# --------------------------------------------------------------------------------------------
# Sec. 1 with per-example gradients: the two aggregations
# --------------------------------------------------------------------------------------------

AGGREGATIONS = ("sum_then_abs", "abs_then_sum")


def per_example_scores(
  loss_fn: Callable,
  params: PyTree,
  examples: Any,
  criterion: str = "weighted_grad",
  aggregation: str = "sum_then_abs",
  *,
  consts: Any = None,
  stacked: bool = False,
  chunk_size: int | None = None,
) -> PyTree:
  """Element-wise scores from per-example gradients g_i (`10-del.md` §1, per-example variant).

  ``sum_then_abs``: s = |θ ⊙ Σ_i g_i| (``weighted_grad``) or |Σ_i g_i| (``grad``): the batch
  score of ``criticality_scores`` up to the constant factor of the batch mean (exactly B times
  it when every batch has B examples). ``abs_then_sum``: s = Σ_i |θ ⊙ g_i| = |θ| ⊙ Σ_i |g_i|
  (resp. Σ_i |g_i|), where no two examples cancel. ``weight`` ignores the data.

  Args:
    loss_fn: loss of ONE example, ``loss_fn(params, example[, consts])`` (``pex.inference_loss``
      for a model in inference mode).
    params: θ* (a leading model axis when ``stacked``).
    examples: pytree with a leading example axis, e.g. ``(x, y)``; the forget set, or the whole
      training set for ``weighted_grad_all``.
    criterion: one of ``CRITERIA``; aggregation: one of ``AGGREGATIONS``.
    consts, stacked, chunk_size: as in ``pex.gradient_reductions`` (bounded-memory chunks).

  Returns:
    Float32 scores with the structure (and model axis) of ``params``.
  """
  _check_criterion(criterion)
  if aggregation not in AGGREGATIONS:
    raise ValueError(f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")
  if criterion == "weight":
    return scores_from_gradient(params, None, criterion)
  red = "sum" if aggregation == "sum_then_abs" else "abs_sum"
  g = pex.gradient_reductions(loss_fn, params, examples, reductions=(red,), consts=consts,
                              stacked=stacked, chunk_size=chunk_size)[red]
  # abs_then_sum: Σ_i |θ ⊙ g_i| = |θ| ⊙ Σ_i |g_i|, which scores_from_gradient computes too
  return scores_from_gradient(params, g, criterion)


# --------------------------------------------------------------------------------------------
# Sec. 5: baseline strategies
# --------------------------------------------------------------------------------------------


def channel_ids(path: tuple | str, shape: tuple) -> tuple[np.ndarray, int]:
  """(id per element `[*shape]`, number of channels C) for one leaf, by ``channel_layout``.

  Elements of one output channel share an id in [0, C); element-wise leaves give every element
  its own id (C = size).
  """
  kind, k = channel_layout(path, tuple(shape))
  size = int(math.prod(shape))
  if kind == "elementwise":
    return np.arange(size).reshape(shape), size
  if kind == "leading":
    c = int(shape[0])
    return np.broadcast_to(np.arange(c).reshape((c,) + (1,) * (len(shape) - 1)), shape), c
  out_shape = tuple(shape[len(shape) - k:])
  c = int(math.prod(out_shape))
  return np.broadcast_to(np.arange(c).reshape(out_shape), shape), c


def random_scores(params: PyTree, key: jax.Array, granularity: str = "param") -> PyTree:
  """I.i.d. uniform scores: one per element (``param``) or one per output channel broadcast to
  the channel's elements (``channel``: element-wise leaves still get one per element). With
  ``global_top_fraction_mask`` they give a uniformly random mask of exactly floor(α·P) elements
  (``param``) or uniformly random channels over all layers, the channel at the budget's edge
  taken in part (``channel``)."""
  if granularity not in GRANULARITIES:
    raise ValueError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  spec, ids = [], []
  for path, p in leaves:
    shape = tuple(np.shape(p))
    if granularity == "param":
      spec.append((shape, None))
      ids.append(np.zeros((), np.int32))
    else:
      cid, c = channel_ids(path, shape)
      spec.append((shape, int(c)))
      ids.append(np.asarray(cid, np.int32))
  out = _random_scores_fn(tuple(spec))(key, ids)
  return jax.tree_util.tree_unflatten(treedef, out)


@functools.lru_cache(maxsize=64)
def _random_scores_fn(spec: tuple):
  """One jitted program per tree layout (the same numbers as the eager draws: one key per leaf
  from ``split(key, L)``, uniform per element or per channel)."""

  def fn(key, ids):
    keys = jax.random.split(key, max(1, len(spec)))
    out = []
    for (shape, c), k, idx in zip(spec, keys, ids):
      if c is None:
        out.append(jax.random.uniform(k, shape, jnp.float32))
      else:
        out.append(jax.random.uniform(k, (c,), jnp.float32)[idx])
    return out

  return jax.jit(fn)


def random_mask(params: PyTree, alpha: float, key: jax.Array, granularity: str = "param",
                per_layer: bool = True) -> PyTree:
  """Strategy ``random`` (`10-del.md` §5), exactly floor(α·P) elements from ``key``.

  ``param``: uniformly random elements over the whole tree. ``channel`` (the spec: "random
  channels per layer, keeping the layer structure"): every leaf gets its own quota, floor(α·n)
  of its n elements (the floor's remainders go one element each to the leaves with the largest
  remainders, so the total is exactly floor(α·P)), filled by whole output channels
  (``channel_ids``) in a random order, the last one in part; element-wise leaves (biases, norm
  parameters) take random elements. ``per_layer=False``: random channels drawn over all layers
  at once (``random_scores``), so the layers' fractions vary.
  """
  if granularity == "param" or not per_layer:
    return global_top_fraction_mask(random_scores(params, key, granularity), alpha)
  if granularity not in GRANULARITIES:
    raise ValueError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
  a = Fraction(repr(_check_alpha(alpha)))
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  sizes = [int(np.size(l)) for _, l in leaves]
  quota = [int(math.floor(a * s)) for s in sizes]
  extra = budget_count(alpha, sum(sizes)) - sum(quota)  # < number of leaves
  by_remainder = sorted(range(len(sizes)), key=lambda i: (-(a * sizes[i] - quota[i]), i))
  for i in by_remainder[:extra]:
    quota[i] += 1
  keys = jax.random.split(key, max(1, len(leaves)))
  out = []
  for (path, leaf), q, k in zip(leaves, quota, keys):
    shape = tuple(np.shape(leaf))
    ids, c = channel_ids(path, shape)
    order = np.asarray(jax.random.permutation(k, c))  # channels in a random order
    rank = np.empty(c, np.int64)
    rank[order] = np.arange(c)
    flat = np.asarray(ids).ravel()
    pick = np.lexsort((np.arange(flat.size), rank[flat]))[:q]  # whole channels first
    m = np.zeros(flat.size, bool)
    m[pick] = True
    out.append(jnp.asarray(m.reshape(shape)))
  return jax.tree_util.tree_unflatten(treedef, out)


def _walk_first_use(jaxpr, env: dict, first: dict, counter: list) -> None:
  """Record, for every input leaf, the index of the first equation (in program order, nested
  calls expanded) that reads it."""
  for eqn in jaxpr.eqns:
    subs = [v for v in eqn.params.values() if isinstance(v, (jcore.ClosedJaxpr,
                                                               jcore.Jaxpr))]
    if subs:
      sub = subs[0]
      inner = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
      n_in = len(inner.invars)
      outer = list(eqn.invars)[-n_in:] if len(eqn.invars) >= n_in else list(eqn.invars)
      sub_env = {iv: env[ov] for iv, ov in zip(inner.invars, outer)
                 if isinstance(ov, jcore.Var) and ov in env}
      _walk_first_use(inner, sub_env, first, counter)
    for v in eqn.invars:
      if isinstance(v, jcore.Var) and v in env:
        first.setdefault(env[v], counter[0])
    # values computed from a leaf (e.g. a reshaped kernel) keep pointing at that leaf
    srcs = [env[v] for v in eqn.invars if isinstance(v, jcore.Var) and v in env]
    if len(srcs) == 1 and len(eqn.invars) == 1 and not subs:
      for o in eqn.outvars:
        env[o] = srcs[0]
    counter[0] += 1


def forward_order(forward_fn: Callable[[PyTree], Any], params: PyTree) -> list[str]:
  """'/'-joined leaf paths of ``params`` in the order the forward pass first reads them.

  ``forward_fn(params) -> outputs`` (e.g. the model's inference apply on one sample input) is
  traced once (``jax.make_jaxpr``, nothing runs); leaves it never reads come last, in tree
  order. Model-agnostic: this is how ``shallowest`` / ``deepest`` know the depth of a layer.
  """
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  closed = jax.make_jaxpr(forward_fn)(params)
  invars = closed.jaxpr.invars[: len(leaves)]
  env = {v: i for i, v in enumerate(invars)}
  first: dict[int, int] = {}
  _walk_first_use(closed.jaxpr, env, first, [0])
  order = sorted(range(len(leaves)), key=lambda i: (first.get(i, math.inf), i))
  return [keypath_str(leaves[i][0]) for i in order]


def _layer_of(path: str) -> str:
  return path.rsplit("/", 1)[0] if "/" in path else path


def layer_depth_mask(params: PyTree, alpha: float, order: list[str], side: str = "shallowest"
                     ) -> PyTree:
  """Strategies ``shallowest`` / ``deepest`` (`10-del.md` §5): whole layers from the input side
  (resp. the output side) until floor(α·P) elements are selected.

  A layer is the set of leaves sharing a parent path (a module's kernel and bias, a norm's scale
  and offset); its depth is that of its first leaf in ``order`` (``forward_order``). Layers are
  taken whole while they fit; the layer that straddles the budget contributes its first elements
  in output-channel order (whole channels of its leaves in ``order``, then part of one), so the
  mask has exactly floor(α·P) elements like every other strategy.
  """
  if side not in ("shallowest", "deepest"):
    raise ValueError(f"side must be 'shallowest' or 'deepest', got {side!r}")
  _check_alpha(alpha)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [keypath_str(p) for p, _ in leaves]
  missing = sorted(set(paths) - set(order))
  if missing:
    raise ValueError(f"order lacks the leaves {missing}")
  rank = {p: i for i, p in enumerate(order)}
  layers: dict[str, list[int]] = {}
  for i in sorted(range(len(paths)), key=lambda i: rank[paths[i]]):
    layers.setdefault(_layer_of(paths[i]), []).append(i)
  layer_list = list(layers.values())
  if side == "deepest":
    layer_list = layer_list[::-1]
  total = sum(int(np.size(l)) for _, l in leaves)
  k = budget_count(alpha, total)
  masks = [np.zeros(np.shape(l), bool) for _, l in leaves]
  for idx in layer_list:
    for i in idx:
      if k <= 0:
        break
      shape = np.shape(leaves[i][1])
      ids, _ = channel_ids(leaves[i][0], shape)
      # elements ranked by (channel id, position): whole channels first
      flat_order = np.lexsort((np.arange(ids.size), np.asarray(ids).ravel()))
      take = min(k, ids.size)
      m = np.zeros(ids.size, bool)
      m[flat_order[:take]] = True
      masks[i] = m.reshape(shape)
      k -= take
  return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(m) for m in masks])


CRITMEM_UNITS = ("maini", "channel")


def critical_units(params: PyTree, exclude: Callable[[str], bool] | None = None,
                   units: str = "channel") -> tuple[PyTree, int]:
  """Units for ``critmem``: the groups of parameters it zeroes together.

  ``units='maini'`` (Maini et al.'s code, ``get_most_activated_node`` with
  ``channel_wise='channel'``): every output channel of a 4-D (convolution) kernel is one unit
  (its ``kh·kw·C_in`` weights); every other parameter element (dense kernels, biases, norm scales
  and offsets, the classifier) is a unit of its own.
  ``units='channel'``: one unit per output channel of every kernel-like leaf (``channel_layout``
  not element-wise: conv and dense kernels), with the sibling ``bias`` of the same module tied
  to its kernel's channels; norm parameters belong to no unit.

  Returns (a tree of int32 unit ids per element, U); elements outside every unit (norm
  parameters under ``channel``, excluded layers) get id U. ``exclude(path)`` leaves out whole
  layers (e.g. the classifier, whose units are the logits themselves).
  """
  if units not in CRITMEM_UNITS:
    raise ValueError(f"unknown critmem units {units!r}; valid: {', '.join(CRITMEM_UNITS)}")
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [keypath_str(p) for p, _ in leaves]
  ids: list[np.ndarray | None] = [None] * len(leaves)
  offset = 0
  kernel_of: dict[str, tuple[int, tuple]] = {}
  for i, (path, leaf) in enumerate(leaves):
    shape = tuple(np.shape(leaf))
    if exclude is not None and exclude(paths[i]):
      continue
    if units == "maini":
      size = int(math.prod(shape))
      if len(shape) == 4:  # a conv kernel [kh, kw, C_in, C_out]: one unit per output channel
        cid, c = np.broadcast_to(np.arange(shape[-1]), shape), int(shape[-1])
      else:
        cid, c = np.arange(size).reshape(shape), size
      ids[i] = np.asarray(cid, np.int64) + offset
      offset += c
      continue
    kind, k = channel_layout(path, shape)
    if kind == "elementwise":
      continue
    cid, c = channel_ids(path, shape)
    ids[i] = np.asarray(cid, np.int64) + offset
    if kind == "trailing":
      kernel_of[_layer_of(paths[i])] = (offset, shape[len(shape) - k:])
    offset += c
  for i, (path, leaf) in enumerate(leaves):
    if units == "maini" or ids[i] is not None or not paths[i].endswith("/bias"):
      continue
    tied = kernel_of.get(_layer_of(paths[i]))
    if tied is not None and tuple(np.shape(leaf)) == tuple(tied[1]):
      ids[i] = np.arange(int(np.size(leaf))).reshape(np.shape(leaf)) + tied[0]
  out = [np.full(np.shape(l), offset, np.int32) if m is None else m.astype(np.int32)
         for m, (_, l) in zip(ids, leaves)]
  return jax.tree_util.tree_unflatten(treedef, out), offset


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _critmem_steps(logits_fn, params, consts, unit_ids, num_units, cap, inner, xs, ys, fresh,
                   alive, steps, done, pop):
  """Up to `inner` more greedy removals for every slot of a pool (vmapped over slots).

  A slot holds one example: `fresh` restarts it (every unit alive, no removal), `done` slots
  are left as they are. Returns (alive, done, flipped, stalled, steps): a slot is done once its
  prediction flipped, it stalled (no unit with a positive score left) or it made `cap`
  removals."""
  ce = lambda p, x, y: -jax.nn.log_softmax(logits_fn(p, x, consts))[y]
  size = 1 if pop is None else int(pop[1].shape[0]) + 1  # B: the example and its population

  def zeroed(a):
    ext = jnp.concatenate([a, jnp.ones((1,), a.dtype)])
    return jax.tree_util.tree_map(lambda p, u: p * ext[u].astype(p.dtype), params, unit_ids)

  def objective(p, x, y):
    # Maini et al.: the batch-mean CE with the example's loss scaled by -B,
    # J = (1/B) Σ_{j in population} CE_j - CE_i (no population: J = -CE_i)
    logits = logits_fn(p, x, consts)
    j = jax.nn.log_softmax(logits)[y]
    if pop is not None:
      j = j + jnp.sum(jax.vmap(lambda a, b: ce(p, a, b))(*pop)) / size
    return j, logits

  def one(x, y, fresh_i, alive_i, steps_i, done_i):
    alive_i = jnp.where(fresh_i, jnp.ones_like(alive_i), alive_i)
    steps_i = jnp.where(fresh_i, 0, steps_i)
    done_i = jnp.where(fresh_i, False, done_i)

    def cond(c):
      return ~c[1] & (c[4] < cap) & (c[5] < inner)

    def body(c):
      a, _, _, _, st, k = c
      p = zeroed(a)
      g, logits = jax.grad(objective, has_aux=True)(p, x, y)
      flipped = jnp.argmax(logits) != y
      # zeroing element e changes J by about -θ_e ∂J/∂θ_e: the unit with the largest Σ θ ⊙ ∇J
      # lowers J (raises the example's loss against the population's) the most
      prod = jax.tree_util.tree_map(lambda pi, gi: (pi * gi).astype(jnp.float32), p, g)
      score = jnp.zeros((num_units + 1,), jnp.float32)
      for t, u in zip(jax.tree_util.tree_leaves(prod), jax.tree_util.tree_leaves(unit_ids)):
        score = score.at[u.ravel()].add(t.ravel())
      score = jnp.where(a > 0, score[:num_units], -jnp.inf)
      j = jnp.argmax(score)
      stalled = ~flipped & (score[j] <= 0)  # as published: only a positive score is removed
      stop = flipped | stalled
      a = jnp.where(stop, a, a.at[j].set(0.0))
      return a, stop, flipped, stalled, st + jnp.where(stop, 0, 1), k + 1

    c = jax.lax.while_loop(cond, body, (alive_i, done_i, jnp.zeros((), bool),
                                        jnp.zeros((), bool), steps_i, jnp.zeros((), jnp.int32)))
    a, stop, flipped, stalled, st, _ = c
    at_cap = ~stop & (st >= cap)
    # a slot that made its last allowed removal: did that removal flip it?
    flipped = flipped | (at_cap & (jnp.argmax(logits_fn(zeroed(a), x, consts)) != y))
    return a, stop | at_cap, flipped, stalled, st

  return jax.vmap(one)(xs, ys, fresh, alive, steps, done)


def critmem_mask(
  logits_fn: Callable,
  params: PyTree,
  x: Any,
  y: Any,
  *,
  consts: Any = None,
  population: tuple[Any, Any] | None = None,
  units: str = "maini",
  max_steps: int | None = None,
  chunk_size: int = 16,
  inner_steps: int = 16,
  exclude: Callable[[str], bool] | None = None,
) -> tuple[PyTree, dict]:
  """Strategy ``critmem`` (`10-del.md` §5; Maini et al., "Can Neural Network Memorization Be
  Localized?", ICML 2023, public code ``experiments/neuron_flipping/attribution_utils.py``): per
  forget example, zero its highest-scoring unit again and again until its prediction flips; the
  mask is the union of the zeroed units over the forget set, so it sets its own budget.

  As published (the defaults): for example i with a population P of other training examples
  (B = |P| + 1; the code uses the training batch of 512 that holds i; the caller chooses P, e.g.
  one draw of retain examples shared by the forget set), the objective is the
  batch-mean cross-entropy with i's loss scaled by −B,
  J_i(θ) = (1/B) Σ_{j∈P} CE_j(θ) − CE_i(θ), and the unit score is Σ_{e ∈ unit} θ_e ∂J_i/∂θ_e
  (zeroing e lowers J_i by about θ_e ∂J_i/∂θ_e: i's loss rises while the population's stays),
  recomputed at the current, partly zeroed weights after every removal, with the model in
  inference mode. Units follow ``critical_units(units='maini')`` (conv output channels, every
  other parameter element by element, the classifier included); only a unit with a positive
  score is removed (an example with none left "stalls"), and there is no cap on the removals.

  Variants: ``population=None`` scores by the example's own loss alone (J_i = −CE_i);
  ``units='channel'`` zeroes output channels of every kernel-like leaf (bias tied);
  ``max_steps`` caps the removals per example; ``exclude`` leaves layers out of the units.
  Not implemented: the published code's optional input-noise averaging (``gaussian_noise``,
  ``n_EoT``), a random draw per step.

  Args:
    logits_fn: ``logits_fn(params, x, consts) -> [num_classes]`` for ONE example, model in
      inference mode.
    params: θ* (single model); x, y: the forget set.
    consts: constants of ``logits_fn`` (e.g. BatchNorm statistics).
    population: ``(x_pop, y_pop)``, the other B − 1 examples of i's batch, or None.
    units: one of ``CRITMEM_UNITS``.
    max_steps: removals per example at most (None: as many as there are units).
    chunk_size: examples processed together (memory grows with chunk_size x |P|); an example
      that is finished leaves its slot to the next one after at most ``inner_steps`` removals.
    exclude: layers left out of the units (default: none).

  Returns:
    (bool mask of params' structure, info with ``units``, ``units_selected``, ``flipped``,
    ``not_flipped``, ``stalled``, ``already_wrong``, ``removals_mean``/``removals_max`` (over
    the examples that flipped), ``fraction``, ``population``, ``unit_kind``).
  """
  unit_ids, num_units = critical_units(params, exclude, units)
  if num_units == 0:
    raise ValueError("critmem: the parameters have no kernel-like leaf to take units from")
  if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
    raise ValueError(f"critmem: max_steps must be an integer >= 1 or None, got {max_steps!r}")
  if isinstance(inner_steps, bool) or int(inner_steps) < 1 or int(chunk_size) < 1:
    raise ValueError(f"critmem: inner_steps and chunk_size must be integers >= 1, got "
                     f"{inner_steps!r} and {chunk_size!r}")
  cap = num_units if max_steps is None else min(int(max_steps), num_units)
  y = jnp.asarray(y, jnp.int32)
  pop = None
  if population is not None:
    px, py = population
    if len(px) == 0:
      raise ValueError("critmem: the population is empty; pass None to score the example alone")
    pop = (jnp.asarray(px), jnp.asarray(py, jnp.int32))
  selected = np.zeros(num_units, bool)
  flipped_n, stalled_n, already_wrong = 0, 0, 0
  removals: list[int] = []
  n = int(len(y))
  ids = jax.tree_util.tree_map(jnp.asarray, unit_ids)
  x = jnp.asarray(x)
  # a pool of `slots` examples: each call runs a few more removals in every slot, then the
  # slots whose example is finished take the next examples (no slot waits for the slowest)
  slots = max(1, min(int(chunk_size), n))
  slot_ex = np.full(slots, -1)
  alive = jnp.ones((slots, num_units), jnp.float32)
  steps = jnp.zeros((slots,), jnp.int32)
  done = jnp.ones((slots,), bool)
  nxt = 0
  while True:
    fresh = np.zeros(slots, bool)
    for s_ in np.flatnonzero(slot_ex < 0):
      if nxt >= n:
        break
      slot_ex[s_], fresh[s_] = nxt, True
      nxt += 1
    if (slot_ex < 0).all():
      break
    rows = jnp.asarray(np.maximum(slot_ex, 0))
    alive, done, flipped, stalled, steps = _critmem_steps(
        logits_fn, params, consts, ids, num_units, cap, int(inner_steps), x[rows], y[rows],
        jnp.asarray(fresh), alive, steps, jnp.asarray(done | (slot_ex < 0)), pop)
    finished = np.asarray(done) & (slot_ex >= 0)
    if finished.any():
      f_steps, f_flip = np.asarray(steps)[finished], np.asarray(flipped)[finished]
      selected |= (np.asarray(alive)[finished] == 0).any(axis=0)
      flipped_n += int(f_flip.sum())
      stalled_n += int(np.asarray(stalled)[finished].sum())
      already_wrong += int(((f_steps == 0) & f_flip).sum())
      removals += [int(v) for v in f_steps[f_flip & (f_steps > 0)]]
      slot_ex[finished] = -1
    done = np.asarray(done)
  ext = np.concatenate([selected, [False]])
  mask = jax.tree_util.tree_map(lambda u: jnp.asarray(ext[np.asarray(u)]), unit_ids)
  total = sum(int(np.size(l)) for l in jax.tree_util.tree_leaves(params))
  count = sum(int(np.count_nonzero(np.asarray(l))) for l in jax.tree_util.tree_leaves(mask))
  removed = np.asarray(removals, int)
  info = dict(units=int(num_units), units_selected=int(selected.sum()), examples=n,
              flipped=flipped_n, not_flipped=n - flipped_n, stalled=stalled_n,
              already_wrong=already_wrong,
              removals_mean=float(removed.mean()) if removed.size else 0.0,
              removals_max=int(removed.max()) if removed.size else 0,
              fraction=count / total if total else 0.0,
              max_steps=None if max_steps is None else int(max_steps),
              population=0 if pop is None else int(pop[1].shape[0]), unit_kind=units)
  return mask, info
