"""Element-wise parameter masks and the masked optax update.

A *mask* is a pytree with exactly the structure of the parameters it applies to; every leaf has the
shape of the corresponding parameter and a ``bool`` (hard mask) or floating (soft mask) dtype.
Masks are element-wise: unlike ``optax.masked`` / ``optax.freeze``, which select whole leaves, one
kernel may be partly trainable. ``True`` / non-zero marks a parameter that may change (a "critical"
parameter in DEL's terms); ``False`` / ``0`` marks one that must stay bit-identical.

This is the machinery of localized unlearning (Torkzadehmahani et al., "Improved Localized Machine
Unlearning Through the Lens of Memorization", arXiv 2412.02432, Sec. 4): a localization strategy
(``unlearn_jax.localize``) produces a mask m, ``reset`` re-initializes the selected parameters
(θ' = (1 - m) ⊙ θ* + m ⊙ θ0) and ``masked_updates`` confines any optax optimizer to them.

Everything here is model-agnostic: it only sees pytrees.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
  "MaskedUpdatesState",
  "masked_updates",
  "MaskInState",
  "masked_updates_from_state",
  "set_mask",
  "masked",
  "reset",
  "full_mask",
  "mask_count",
  "mask_fraction",
  "layer_summary",
  "mask_union",
  "mask_intersection",
  "always_trainable",
  "path_contains",
  "keypath_str",
  "check_mask",
]

PyTree = Any


# --------------------------------------------------------------------------------------------
# Paths and validation
# --------------------------------------------------------------------------------------------


def _key_str(key: Any) -> str:
  for attr in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def keypath_str(path: tuple) -> str:
  """'/'-joined string of a key path from ``jax.tree_util.tree_flatten_with_path``.

  Example: the path of ``params['dense1']['kernel']`` becomes ``'dense1/kernel'``.
  """
  return "/".join(_key_str(k) for k in path)


def _is_float(x: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def check_mask(mask: PyTree, params: PyTree, what: str = "mask") -> None:
  """Raises ValueError unless ``mask`` has the tree structure and leaf shapes of ``params``."""
  m_def, p_def = jax.tree_util.tree_structure(mask), jax.tree_util.tree_structure(params)
  if m_def != p_def:
    raise ValueError(f"{what} tree structure {m_def} does not match params structure {p_def}")
  m_leaves = jax.tree_util.tree_flatten_with_path(mask)[0]
  for (path, m), p in zip(m_leaves, jax.tree_util.tree_leaves(params)):
    if jnp.shape(m) != jnp.shape(p):
      raise ValueError(
        f"{what} leaf '{keypath_str(path)}' has shape {jnp.shape(m)}, "
        f"params leaf has shape {jnp.shape(p)}"
      )


# --------------------------------------------------------------------------------------------
# The masked optax transform
# --------------------------------------------------------------------------------------------


class MaskedUpdatesState(NamedTuple):
  """State of ``masked_updates``: empty (the mask is a constant closed over by the factory)."""


def _apply_mask(m: jax.Array, u: jax.Array) -> jax.Array:
  if not _is_float(m):
    # Hard mask: `where`, not a product, so a NaN/inf update of a frozen element cannot leak.
    return jnp.where(jnp.asarray(m, bool), u, jnp.zeros_like(u))
  m = jnp.asarray(m)
  # Soft mask: scale; elements with weight exactly 0 are still zeroed with `where` (no NaN leak).
  return jnp.where(m != 0, u * m.astype(u.dtype), jnp.zeros_like(u))


def masked_updates(mask: PyTree) -> optax.GradientTransformation:
  """Zeroes (or scales) updates element-wise with a fixed mask.

  Element ``i`` of the outgoing update is ``u_i`` where ``mask_i`` is True, ``0`` where it is False
  (bool leaves, via ``jnp.where`` so that NaN/inf updates of frozen elements cannot leak), and
  ``mask_i * u_i`` for floating leaves (still exactly 0 where ``mask_i == 0``).

  Place it **last** in a chain (after weight decay, momentum, learning-rate scaling) so that frozen
  parameters stay bit-identical after any number of ``optax.apply_updates`` steps, as localized
  unlearning requires (DEL, arXiv 2412.02432, Sec. 4 step 3: "everything else stays bit-identical").
  Earlier in the chain it only masks the gradient: a later ``add_decayed_weights`` would still move
  frozen parameters, and a stateful transform would still see them.

  Under ``jax.vmap`` over a leading "model" axis, either close over one shared mask (no model axis)
  and build/init the optimizer inside the vmapped function, or build it per model from a mask slice.

  Args:
    mask: pytree with the structure and leaf shapes of the params; bool or float leaves.

  Returns:
    An ``optax.GradientTransformation`` with empty ``MaskedUpdatesState``. ``init`` raises
    ValueError if the mask does not match the params' structure or shapes.
  """

  def init_fn(params):
    check_mask(mask, params)
    return MaskedUpdatesState()

  def update_fn(updates, state, params=None):
    del params
    check_mask(mask, updates, what="mask (vs updates)")
    updates = jax.tree_util.tree_map(_apply_mask, mask, updates)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


class MaskInState(NamedTuple):
  """State of ``masked_updates_from_state``: the mask itself (a pytree like the params)."""

  mask: PyTree


def masked_updates_from_state() -> optax.GradientTransformation:
  """Like ``masked_updates``, but the mask lives in the optimizer state.

  ``init`` stores an all-True mask; ``set_mask(opt_state, mask)`` replaces it. Because the mask
  is part of the state, a stacked optimizer state (one per model under ``jax.vmap``) carries one
  mask per model, e.g. a SalUn or DEL mask computed from each seed's own trained weights, and it
  is checkpointed with the rest of the state. Place it last in the chain (see ``masked_updates``).
  """

  def init_fn(params):
    return MaskInState(full_mask(params, True))

  def update_fn(updates, state, params=None):
    del params
    check_mask(state.mask, updates, what="mask (vs updates)")
    return jax.tree_util.tree_map(_apply_mask, state.mask, updates), state

  return optax.GradientTransformation(init_fn, update_fn)


def set_mask(opt_state: Any, mask: PyTree) -> Any:
  """Replace the mask of every ``MaskInState`` inside an optimizer state (e.g. an optax chain)."""
  found = []

  def swap(node):
    if isinstance(node, MaskInState):
      check_mask(mask, node.mask)
      found.append(True)
      return MaskInState(mask)
    return node

  new_state = jax.tree_util.tree_map(swap, opt_state, is_leaf=lambda n: isinstance(n, MaskInState))
  if not found:
    raise ValueError(
      "set_mask: the optimizer state has no masked_updates_from_state() "
      "component; add it to the optimizer chain"
    )
  return new_state


def masked(optimizer: optax.GradientTransformation, mask: PyTree) -> optax.GradientTransformation:
  """``optax.chain(optimizer, masked_updates(mask))``: ``optimizer`` restricted to the mask.

  The inner optimizer still sees full gradients (its state, e.g. momentum, evolves for frozen
  elements too) but its final updates there are zeroed, so frozen parameters never change.
  """
  return optax.chain(optimizer, masked_updates(mask))


# --------------------------------------------------------------------------------------------
# Reset and mask construction
# --------------------------------------------------------------------------------------------


def reset(params: PyTree, fresh_params: PyTree, mask: PyTree) -> PyTree:
  """Re-initializes the masked parameters: θ' = (1 - m) ⊙ θ + m ⊙ θ0 (DEL, arXiv 2412.02432, Sec. 4).

  Args:
    params: current parameters θ (e.g. the trained θ*).
    fresh_params: a fresh initialization θ0 with the same structure (use a *new* PRNG key).
    mask: bool leaves select element-wise (``where(m, θ0, θ)``, exact); float leaves interpolate.

  Returns:
    The reset parameters, with the dtypes of ``params``.
  """
  check_mask(mask, params)
  check_mask(fresh_params, params, what="fresh_params")

  def one(p, f, m):
    p = jnp.asarray(p)
    if not _is_float(m):
      return jnp.where(jnp.asarray(m, bool), jnp.asarray(f, p.dtype), p)
    m = jnp.asarray(m, p.dtype)
    return ((1 - m) * p + m * jnp.asarray(f, p.dtype)).astype(p.dtype)

  return jax.tree_util.tree_map(one, params, fresh_params, mask)


def full_mask(params: PyTree, value: bool | float = True) -> PyTree:
  """A mask of ``params``' structure filled with ``value`` (bool leaves for a bool value, else float32)."""
  dtype = jnp.bool_ if isinstance(value, (bool, np.bool_)) else jnp.float32
  return jax.tree_util.tree_map(lambda p: jnp.full(jnp.shape(p), value, dtype), params)


def _combine(a: PyTree, b: PyTree, bool_op: Callable, float_op: Callable) -> PyTree:
  check_mask(b, a, what="second mask")

  def one(x, y):
    if _is_float(x) or _is_float(y):
      return float_op(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    return bool_op(jnp.asarray(x, bool), jnp.asarray(y, bool))

  return jax.tree_util.tree_map(one, a, b)


def mask_union(a: PyTree, b: PyTree) -> PyTree:
  """Element-wise union: logical OR for bool masks, maximum if either is float."""
  return _combine(a, b, jnp.logical_or, jnp.maximum)


def mask_intersection(a: PyTree, b: PyTree) -> PyTree:
  """Element-wise intersection: logical AND for bool masks, minimum if either is float."""
  return _combine(a, b, jnp.logical_and, jnp.minimum)


def path_contains(*names: str) -> Callable[[str], bool]:
  """Predicate on '/'-joined paths: True if any path component equals one of ``names``.

  Example: ``always_trainable(mask, path_contains('classifier'))`` matches
  ``'classifier/kernel'`` and ``'params/classifier/bias'`` but not ``'classifier_2/kernel'``.
  """
  wanted = set(names)
  return lambda path: any(part in wanted for part in path.split("/"))


def always_trainable(mask: PyTree, predicate: Callable[[str], bool]) -> PyTree:
  """Marks every leaf whose '/'-joined path satisfies ``predicate`` as fully trainable.

  DEL's finetuning step updates the masked parameters plus the whole classifier layer
  (arXiv 2412.02432, Sec. 4): ``always_trainable(mask, path_contains('classifier'))`` or
  ``always_trainable(mask, lambda path: 'Dense_0' in path)``. Matching leaves become all True
  (bool leaves) or all 1 (float leaves); others are unchanged.
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(mask)
  out = []
  for path, m in leaves:
    if predicate(keypath_str(path)):
      m = jnp.ones_like(m, dtype=jnp.result_type(m))
    out.append(m)
  return jax.tree_util.tree_unflatten(treedef, out)


# --------------------------------------------------------------------------------------------
# Reporting helpers (host side: they return Python numbers)
# --------------------------------------------------------------------------------------------


def mask_count(mask: PyTree) -> int:
  """Number of selected elements (non-zero / True) over all leaves."""
  return int(sum(np.count_nonzero(np.asarray(m)) for m in jax.tree_util.tree_leaves(mask)))


def mask_fraction(mask: PyTree) -> float:
  """Selected elements divided by the total number of elements (over all leaves)."""
  total = sum(int(np.size(m)) for m in jax.tree_util.tree_leaves(mask))
  return mask_count(mask) / total if total else 0.0


def layer_summary(mask: PyTree) -> list[dict]:
  """Per-leaf summary: ``[{'path', 'selected', 'size', 'fraction'}, ...]`` in tree-leaf order.

  ``path`` is the '/'-joined key path (e.g. ``'dense1/kernel'``), ``selected`` the number of
  non-zero elements, ``size`` the leaf size and ``fraction = selected / size``.
  """
  rows = []
  for path, m in jax.tree_util.tree_flatten_with_path(mask)[0]:
    m = np.asarray(m)
    selected, size = int(np.count_nonzero(m)), int(m.size)
    rows.append(
      dict(
        path=keypath_str(path),
        selected=selected,
        size=size,
        fraction=selected / size if size else 0.0,
      )
    )
  return rows
