"""Per-example gradients: `jax.vmap` of `jax.grad` over examples, jitted, in bounded-memory chunks.

For a loss of one example, `loss_fn(params, example) -> scalar` (or `loss_fn(params, example,
consts)` when `consts` is given), the per-example gradient of example i is

  g_i = ∇θ loss_fn(θ, example_i),

the quantity DEL's example-level scores need (`10-del.md` §1: `abs_then_sum` s = Σ_i |θ ⊙ g_i|
lets no two examples cancel, which a batch gradient cannot give; Torkzadehmahani et al., arXiv
2412.02432). The examples are processed in chunks of `chunk_size`: a chunk's gradients `[c, ...]`
are computed by one jitted `vmap(grad)` and reduced at once, so at most one chunk of gradients
exists at any time (peak memory ~ chunk_size x the parameter count, plus the model's
activations). The last chunk is padded with zero-weight copies of the first example, so every
chunk runs the same compiled program and the padding contributes exactly zero.

  per_example_gradients(...)   every g_i, stacked `[n, ...]` (materialised: only for small n)
  gradient_reductions(...)     running reductions over the examples without materialising them:
                                 "sum"     Σ_i g_i           (structure of params)
                                 "abs_sum" Σ_i |g_i|          (structure of params)
                                 "sq_sum"  Σ_i g_i²           (structure of params)
                                 "norm"    ‖g_i‖₂ over all leaves, per example `[n]`
  default_chunk_size(...)      the chunk that fits a memory budget
  inference_loss(apply_fn)     CE of one example with the model in inference mode (BatchNorm on
                               its running statistics, passed as `consts`, i.e. constants)

Stacked (per-seed) states: `stacked=True` maps over a leading model axis of `params` (and of
`consts`, e.g. each seed's BatchNorm statistics) inside the same compiled chunk, the examples
shared by all models; every result then carries the model axis first (`[N, ...]`, norms `[N, n]`).
Gradients and reductions are accumulated in float32.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["REDUCTIONS", "DEFAULT_MEMORY_BUDGET", "default_chunk_size", "inference_loss",
           "per_example_gradients", "gradient_reductions", "chunks"]

PyTree = Any
REDUCTIONS = ("sum", "abs_sum", "sq_sum", "norm")
# Bytes of per-example gradients one chunk may hold by default (float32), per model.
DEFAULT_MEMORY_BUDGET = 256 * 2**20


def _num_params(params: PyTree, stacked: bool) -> int:
  leaves = jax.tree_util.tree_leaves(params)
  return int(sum(math.prod(np.shape(l)[1:] if stacked else np.shape(l)) for l in leaves))


def _num_models(params: PyTree, stacked: bool) -> int:
  return int(np.shape(jax.tree_util.tree_leaves(params)[0])[0]) if stacked else 1


def default_chunk_size(params: PyTree, num_examples: int, *, stacked: bool = False,
                       memory_budget: int = DEFAULT_MEMORY_BUDGET, activation_factor: float = 3.0
                       ) -> int:
  """The largest chunk whose float32 per-example gradients fit `memory_budget` bytes.

  A chunk of c examples holds c·P·4 bytes of gradients per model (P parameters) plus the
  backward pass's intermediates, counted as `activation_factor` times that; the result is
  clipped to [1, num_examples].
  """
  p = _num_params(params, stacked) * _num_models(params, stacked)
  per_example = max(1.0, 4.0 * p * (1.0 + activation_factor))
  return int(max(1, min(int(num_examples), int(memory_budget // per_example))))


def inference_loss(apply_fn: Callable) -> Callable:
  """`loss(params, (x, y), model_state)`: cross-entropy of one example (x without batch axis),
  model in inference mode (BatchNorm on the running statistics in `model_state`, a constant).

  Cached per `apply_fn`, so repeated calls return the same function (no recompilation)."""
  return _inference_loss(apply_fn)


@functools.lru_cache(maxsize=None)
def _inference_loss(apply_fn):
  def loss(params, example, model_state):
    x, y = example
    logits, _ = apply_fn(params, model_state, x[None], False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y[None])[0]
  return loss


def chunks(examples: PyTree, chunk_size: int) -> Iterator[tuple[PyTree, jax.Array, int]]:
  """`(chunk, weights, m)` for consecutive chunks of `chunk_size` examples (leading axis); the
  last one padded to full size with copies of example 0 at weight 0 (m = real examples)."""
  leaves = jax.tree_util.tree_leaves(examples)
  n = int(np.shape(leaves[0])[0])
  if n == 0:
    raise ValueError("no examples: per-example gradients need at least one")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  examples = jax.tree_util.tree_map(jnp.asarray, examples)
  for start in range(0, n, chunk_size):
    m = min(chunk_size, n - start)
    take = np.concatenate([np.arange(start, start + m), np.zeros(chunk_size - m, np.int64)])
    chunk = jax.tree_util.tree_map(lambda a: a[take] if m < chunk_size else a[start:start + m],
                                   examples)
    w = jnp.asarray(np.arange(chunk_size) < m, jnp.float32)
    yield chunk, w, m


def _grads_of_chunk(loss_fn, has_consts: bool):
  """vmap over examples of grad: (params, consts, chunk, w) -> grads [c, ...] (zero where w=0)."""

  def one(params, consts, example):
    return jax.grad(loss_fn)(params, example, consts) if has_consts else jax.grad(loss_fn)(
        params, example)

  def run(params, consts, chunk, w):
    g = jax.vmap(one, in_axes=(None, None, 0))(params, consts, chunk)
    keep = lambda a: jnp.where(w.reshape((-1,) + (1,) * (a.ndim - 1)) > 0,
                               a.astype(jnp.float32), 0.0)
    return jax.tree_util.tree_map(keep, g)

  return run


@functools.lru_cache(maxsize=None)
def _compiled_materialise(loss_fn, has_consts: bool, stacked: bool):
  run = _grads_of_chunk(loss_fn, has_consts)
  return jax.jit(jax.vmap(run, in_axes=(0, 0 if has_consts else None, None, None)) if stacked
                 else run)


def _summed_loss_grad(loss_fn, has_consts: bool):
  """(params, consts, chunk, w) -> ∇θ Σ_i w_i loss_i: equal to Σ_i w_i g_i (linearity of the
  gradient) without materialising any per-example gradient."""

  def total(params, consts, chunk, w):
    one = ((lambda ex: loss_fn(params, ex, consts)) if has_consts
           else (lambda ex: loss_fn(params, ex)))
    return jnp.sum(w * jax.vmap(one)(chunk))

  def run(params, consts, chunk, w):
    g = jax.grad(total)(params, consts, chunk, w)
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), g)

  return run


@functools.lru_cache(maxsize=None)
def _compiled_reduce(loss_fn, has_consts: bool, stacked: bool, reductions: tuple):
  run = _grads_of_chunk(loss_fn, has_consts)
  only_sum = reductions == ("sum",)
  summed = _summed_loss_grad(loss_fn, has_consts)

  def step(acc, params, consts, chunk, w):
    if only_sum:  # Σ_i g_i is the gradient of the summed loss: no per-example gradients needed
      g = summed(params, consts, chunk, w)
      return {"sum": jax.tree_util.tree_map(lambda a, gi: a + gi, acc["sum"], g)}, None
    g = run(params, consts, chunk, w)
    out = dict(acc)
    if "sum" in reductions:
      out["sum"] = jax.tree_util.tree_map(lambda a, gi: a + gi.sum(0), acc["sum"], g)
    if "abs_sum" in reductions:
      out["abs_sum"] = jax.tree_util.tree_map(lambda a, gi: a + jnp.abs(gi).sum(0),
                                              acc["abs_sum"], g)
    if "sq_sum" in reductions:
      out["sq_sum"] = jax.tree_util.tree_map(lambda a, gi: a + jnp.square(gi).sum(0),
                                             acc["sq_sum"], g)
    norms = None
    if "norm" in reductions:
      sq = sum(jnp.sum(jnp.square(gi).reshape(gi.shape[0], -1), axis=1)
               for gi in jax.tree_util.tree_leaves(g))
      norms = jnp.sqrt(sq)
    return out, norms

  if stacked:
    step = jax.vmap(step, in_axes=(0, 0, 0 if has_consts else None, None, None))
  return jax.jit(step, donate_argnums=(0,))


def _resolve_chunk(params, n, stacked, chunk_size, memory_budget) -> int:
  if chunk_size is None:
    return default_chunk_size(params, n, stacked=stacked, memory_budget=memory_budget)
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
    raise ValueError(f"chunk_size must be an integer >= 1 or None, got {chunk_size!r}")
  return int(min(chunk_size, n))


def per_example_gradients(loss_fn: Callable, params: PyTree, examples: PyTree, *,
                          consts: Any = None, stacked: bool = False,
                          chunk_size: Optional[int] = None,
                          memory_budget: int = DEFAULT_MEMORY_BUDGET) -> PyTree:
  """Every per-example gradient g_i = ∇θ loss_fn(θ, example_i), stacked along a new axis.

  Args:
    loss_fn: `loss_fn(params, example)` (or `(params, example, consts)`) -> scalar, for ONE
      example (leaves without the example axis). Pass the same function object across calls to
      reuse the compiled program.
    params: θ (with a leading model axis when `stacked`).
    examples: pytree of arrays with a leading example axis `[n, ...]`.
    consts: closed-over constants of the loss (e.g. BatchNorm statistics), per model when
      `stacked`; never differentiated.
    stacked: params (and consts) carry a leading model axis.
    chunk_size: examples per compiled chunk (None: `default_chunk_size` of `memory_budget`).

  Returns:
    float32 pytree of params' structure with a leading `[n]` axis (`[N, n]` when stacked). This
    materialises n gradients: for large n use `gradient_reductions`.
  """
  n = int(np.shape(jax.tree_util.tree_leaves(examples)[0])[0])
  c = _resolve_chunk(params, n, stacked, chunk_size, memory_budget)
  fn = _compiled_materialise(loss_fn, consts is not None, stacked)
  axis = 1 if stacked else 0
  parts = [jax.tree_util.tree_map(lambda a, m=m: jax.lax.slice_in_dim(a, 0, m, axis=axis),
                                  fn(params, consts, chunk, w))
           for chunk, w, m in chunks(examples, c)]
  return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=axis), *parts)


def gradient_reductions(loss_fn: Callable, params: PyTree, examples: PyTree, *,
                        reductions: Sequence[str] = ("sum",), consts: Any = None,
                        stacked: bool = False, chunk_size: Optional[int] = None,
                        memory_budget: int = DEFAULT_MEMORY_BUDGET) -> dict:
  """Running reductions of the per-example gradients, one chunk in memory at a time.

  "sum" alone is computed as the gradient of the summed loss of each chunk (the same number by
  linearity, up to float reassociation, at the cost of one batch gradient); any other reduction
  takes the per-example gradients of the chunk.

  Args: as `per_example_gradients`, plus `reductions`, a subset of `REDUCTIONS`:
    "sum" Σ_i g_i, "abs_sum" Σ_i |g_i|, "sq_sum" Σ_i g_i² (float32 pytrees of params'
    structure) and "norm" (‖g_i‖₂ over all parameters, `[n]`).

  Returns:
    `{name: value}` for each requested reduction (a model axis first when `stacked`).
  """
  reductions = tuple(dict.fromkeys(reductions))
  bad = [r for r in reductions if r not in REDUCTIONS]
  if bad or not reductions:
    raise ValueError(f"unknown reduction(s) {bad or reductions!r}; choose from "
                     f"{', '.join(REDUCTIONS)}")
  n = int(np.shape(jax.tree_util.tree_leaves(examples)[0])[0])
  c = _resolve_chunk(params, n, stacked, chunk_size, memory_budget)
  fn = _compiled_reduce(loss_fn, consts is not None, stacked,
                        tuple(r for r in REDUCTIONS if r in reductions))
  zeros = lambda: jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params)
  acc = {r: zeros() for r in ("sum", "abs_sum", "sq_sum") if r in reductions}
  norms = []
  for chunk, w, m in chunks(examples, c):
    acc, nm = fn(acc, params, consts, chunk, w)
    if nm is not None:
      norms.append(nm[..., :m])
  out = dict(acc)
  if "norm" in reductions:
    out["norm"] = jnp.concatenate(norms, axis=-1)
  return out
