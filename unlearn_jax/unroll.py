"""Unrolling SGD: a jitted lockstep unroll of M and the naively retrained M', and its measures.

Thudi, Deza, Chandrasekaran, Papernot, "Unrolling SGD: Understanding Factors Influencing Machine
Unlearning", EuroS&P 2022 (arXiv 2109.13398); `20-unroll.md`. Formulas checked against the
authors' public code (cleverhans-lab/unrolling-sgd, `Unlearning/correlation_verification.py`).

  make_unroll(apply_fn, ...) -> Unroll     static options; `Unroll.run` is pure and vmappable
  drive(unroll, *args, in_axes=..., driver="scan"|"python")   jit (+ vmap), one program or chunks
  verification_error(w_u, w_r)             ||flat(w_u) - flat(w_r)||_2 over trainable params
  unlearning_errors(steps, sigmas, ...)    e = η²/2 · t · ||w_t - w_0|| · σ; rolling; checkpointed
  top_eigenvalue(loss_fn, params, v0)      power iteration on Hessian-vector products (signed)
  sd_loss / sd_objective(lam)              the SD regularizer (`train.make_train_step` objective)

The unroll (`20-unroll.md` §1, §7) trains two models from the same weights w_0 with the same
optimizer and data order: M sees every batch, M' keeps its params, momentum and BatchNorm
statistics untouched on the steps flagged `forget` (B*), so it is exactly the model retrained
without B* in the same order, and B*'s influence is isolated from SGD noise. The optimizer is
PyTorch's SGD (dampening 0): g <- ∇L + wd·w; m <- g + μ·m; w <- w - η·m (optax's
`add_decayed_weights` + `sgd(momentum)`, the library's recipe), with a per-step learning rate so
that η can be vmapped and scheduled. M' computes its step on B* and discards it (`jnp.where` on
the flag, as the design card says): its state never sees B*.

What is recorded, per step (`steps`, arrays [T]): `loss` (M's objective on its batch),
`loss_retrain` (M', NaN on skipped steps), `delta_w` = ||w_t - w_0||, `delta_ckpt` = ||w_t - w_c||
with w_c the weights at the last multiple of `checkpoint_every` before t, `ver_none` =
||w_t - w'_t|| (verification error of doing nothing), and, with `single_gradient=True`, the
verification errors of single-gradient unlearning w_U = w_t + c_t · g0 with
g0 = ∇L̄(w_0; B*) (mean objective over the first forget batch at w_0, model in *train* mode, as
SGD saw it; `20-unroll.md` §3): `ver_sg` with c_t = Σ_{s <= t, forget} η_s (the paper's and the
public code's n·η) and `ver_sg_momentum` with the heavy-ball impulse response
c_t = Σ_{s <= t} η_s · b_s, b_s = μ·b_{s-1} + forget_s (the first-order effect of one gradient
under momentum, η/(1 - μ) after many steps; not in the paper, shown for comparison). `record`
adds the weights: `full` every step ([T, P] flat vectors `w`, `w_retrain`), `every` a snapshot
every `every` steps ([T / every, P]), `scalars` none.

Per chunk of `every` steps (`chunks`, arrays [T / every + 1], index 0 at w_0), with `sigma=True`:
`eigenvalue`, the signed top Hessian eigenvalue of the training objective at M's weights on a
fixed batch (`hx`, `hy`), BatchNorm in inference mode (power iteration warm-started from the
previous chunk's eigenvector), and `power_iterations`.

Vmapping: `Unroll.run(params, model_state, steps, data, lam, key)` is pure; vmap it over a
leading axis of params/model_state/steps/lam/key (seeds, learning rates inside `steps["lr"]`, SD
λ) with `data` shared (`in_axes=None`), so a whole sweep is one program (`drive`).

CPU (`60-platform.md`): XLA:CPU runs convolutions inside a `scan` loop 20-30x slower than the
same step called from Python. `driver="python"` runs one jitted chunk of `every` steps per call
(its inner scan fully unrolled with `inner_unroll=True`), so a small CNN is practical;
`benchmarks/unroll.py` measures both.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

RECORDS = ("scalars", "every", "full")
SIGMA_FORMS = ("abs", "sqrt")
DRIVERS = ("scan", "python")

PyTree = Any


# ----------------------------------------------------------------------------------------------
# The SD loss (`20-unroll.md` §5).


def _safe_sqrt(v):
  """sqrt(v) with gradient 0 (not inf) where v == 0 (logits all equal, e.g. a zero classifier)."""
  pos = v > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def logit_std_term(logits: jax.Array) -> jax.Array:
  """Σ_n std_c(z_{n,c}) / (N · C): each example's standard deviation of its logits across the C
  classes (ddof=1, `torch.std`'s default), summed and divided by the number of logit entries."""
  z = logits.astype(jnp.float32)
  c = z.shape[-1]
  var = jnp.sum(jnp.square(z - z.mean(-1, keepdims=True)), -1) / (c - 1)
  return jnp.sum(_safe_sqrt(var)) / z.size


def sd_loss(logits: jax.Array, labels: jax.Array, lam) -> jax.Array:
  """L_SD = mean_n CE(z_n, y_n) + λ · Σ_n std_c(z_{n,c}) / (N · C) (Thudi et al. §5; the public
  code's `std_loss`). λ = 0 is plain cross-entropy; λ may be traced (vmapped)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return ce + lam * logit_std_term(logits)


def sd_objective(lam: float):
  """The SD loss as a `train.Objective` (logits, labels, params, step) -> loss, for
  `train.make_train_step(sd_objective(lam))`."""

  def objective(logits, labels, params, step):
    del params, step
    return sd_loss(logits, labels, lam)

  return objective


# ----------------------------------------------------------------------------------------------
# Flat vectors and the verification error (`20-unroll.md` §1).


def flatten(tree: PyTree) -> jax.Array:
  """All leaves raveled and concatenated in `tree_leaves` order (float32)."""
  return jnp.concatenate([jnp.ravel(l).astype(jnp.float32) for l in jax.tree_util.tree_leaves(tree)])


def tree_norm(tree: PyTree) -> jax.Array:
  """||flat(tree)||_2 without materialising the flat vector."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(l.astype(jnp.float32)))
                      for l in jax.tree_util.tree_leaves(tree)))


def tree_distance(a: PyTree, b: PyTree) -> jax.Array:
  return tree_norm(jax.tree_util.tree_map(jnp.subtract, a, b))


def verification_error(params_unlearned: PyTree, params_retrained: PyTree) -> jax.Array:
  """ver(w_U, w_R) = ||flat(w_U) - flat(w_R)||_2 over the trainable parameters (Thudi et al.
  §1). Pass `params` only: BatchNorm running statistics live in `model_state` and are excluded."""
  return tree_distance(params_unlearned, params_retrained)


# ----------------------------------------------------------------------------------------------
# Curvature: the top Hessian eigenvalue by power iteration (`20-unroll.md` §4).


class PowerResult(NamedTuple):
  eigenvalue: jax.Array      # signed Rayleigh quotient v·Hv of the last iterate
  eigenvector: PyTree        # unit-norm iterate (warm start for the next call)
  iterations: jax.Array      # Hessian-vector products used
  converged: jax.Array       # relative change <= tol before max_iter


def hvp(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
  """H(params) v by forward-over-reverse differentiation (`jax.jvp` of `jax.grad`)."""
  return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def _normalize(v):
  n = tree_norm(v)
  return jax.tree_util.tree_map(lambda a: a / jnp.maximum(n, 1e-30).astype(a.dtype), v), n


def _vdot(a, b):
  return sum(jnp.sum(x.astype(jnp.float32) * y.astype(jnp.float32))
             for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def top_eigenvalue(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, v0: PyTree, *,
                   tol: float = 1e-3, max_iter: int = 100) -> PowerResult:
  """The Hessian eigenvalue of largest magnitude of `loss_fn` at `params`, by power iteration.

  v <- Hv / ||Hv||, λ = v·Hv, until |λ_k - λ_{k-1}| <= tol · (|λ_{k-1}| + 1e-6) (PyHessian's rule,
  the public code's tool) or `max_iter` products. Returns the *signed* λ: a saddle's negative
  curvature comes out negative. `v0` (any nonzero pytree like `params`) starts the iteration;
  pass the previous eigenvector to warm-start along a trajectory. Jittable and vmappable (under
  vmap each member stops at its own iteration count).
  """
  v, _ = _normalize(v0)

  def body(state):
    i, v, lam, _, _ = state
    hv = hvp(loss_fn, params, v)
    new = _vdot(v, hv)
    v_next, _ = _normalize(hv)
    done = (i >= 1) & (jnp.abs(new - lam) <= tol * (jnp.abs(lam) + 1e-6))
    return i + 1, v_next, new, done, lam

  def cond(state):
    i, _, _, done, _ = state
    return (i < max_iter) & ~done

  init = (jnp.int32(0), v, jnp.float32(0.0), jnp.bool_(False), jnp.float32(0.0))
  i, v, lam, done, _ = jax.lax.while_loop(cond, body, init)
  return PowerResult(eigenvalue=lam, eigenvector=v, iterations=i, converged=done)


def sigma_from_eigenvalue(eigenvalue, form: str = "abs"):
  """σ from the signed top eigenvalue: `abs` |λ| (the paper's largest singular value of the
  symmetric Hessian, our default) or `sqrt` sqrt(λ) (the public code's quirk; NaN for λ < 0)."""
  if form not in SIGMA_FORMS:
    raise ValueError(f"unknown sigma form {form!r}; choose one of {', '.join(SIGMA_FORMS)}")
  lam = np.asarray(eigenvalue, np.float64)
  if form == "abs":
    return np.abs(lam)
  with np.errstate(invalid="ignore"):
    return np.sqrt(lam)


# ----------------------------------------------------------------------------------------------
# The unlearning error (`20-unroll.md` §4).


def unlearning_error(lr, t, delta_w, sigma):
  """e = (η² / 2) · t · ||w_t - w_0||_2 · σ (Thudi et al. §4)."""
  return 0.5 * np.square(lr) * t * delta_w * sigma


def unlearning_errors(steps: Mapping[str, Any], eigenvalues, *, every: int,
                      checkpoint_every: Optional[int] = None, sigma_form: str = "abs"
                      ) -> dict[str, np.ndarray]:
  """The unlearning error along an unroll, from its records (numpy, last axis = steps).

  `steps`: the unroll's per-step records (`lr`, `delta_w`, `delta_ckpt`), arrays [..., T];
  `eigenvalues`: its per-chunk eigenvalues [..., T / every + 1] (index j measured at w_{j·every}).
  After step t (t = 1..T steps since w_0; the public code uses its 0-based loop index, one less):
    sigma     σ at the latest measurement <= t (at w_t when every = 1)
    sigma_avg mean of the σ measured at w_0, w_every, ... up to t (the "rolling" σ)
    e         η_t²/2 · t · ||w_t - w_0|| · σ
    e_rolling the same with σ_avg
    e_ckpt    checkpointed: the reference point is reset every F = `checkpoint_every` steps
              (w_c = w_{kF}); e accumulates η²/2 · F · ||w_{kF} - w_{(k-1)F}|| · σ over finished
              segments plus η²/2 · (t - c) · ||w_t - w_c|| · σ of the current one (σ at the
              segment's end point). Without `checkpoint_every` it equals e.
  """
  lr = np.asarray(steps["lr"], np.float64)
  delta = np.asarray(steps["delta_w"], np.float64)
  T = lr.shape[-1]
  t = np.arange(1, T + 1, dtype=np.float64)
  sig = sigma_from_eigenvalue(eigenvalues, sigma_form)
  idx = (np.arange(1, T + 1) // every)  # latest measurement index <= t
  sigma = np.take(sig, idx, axis=-1)
  csum = np.cumsum(sig, axis=-1)
  sigma_avg = np.take(csum, idx, axis=-1) / (idx + 1)
  out = {"t": t, "sigma": sigma, "sigma_avg": sigma_avg,
         "e": unlearning_error(lr, t, delta, sigma),
         "e_rolling": unlearning_error(lr, t, delta, sigma_avg)}
  if checkpoint_every:
    f = int(checkpoint_every)
    dc = np.asarray(steps["delta_ckpt"], np.float64)
    seg_len = t - f * np.floor((t - 1) / f)           # steps since the segment's start, 1..F
    current = unlearning_error(lr, seg_len, dc, sigma)
    done = np.where((np.arange(1, T + 1) % f) == 0, current, 0.0)  # a segment's final value
    finished = np.cumsum(done, axis=-1) - done        # segments finished before step t
    out["e_ckpt"] = finished + current
  else:
    out["e_ckpt"] = out["e"]
  return out


# ----------------------------------------------------------------------------------------------
# The unroll.


def _sgd(params, mom, grads, lr, momentum: float, weight_decay: float):
  """PyTorch SGD (dampening 0, coupled weight decay): returns (params, momentum buffer)."""
  if weight_decay:
    grads = jax.tree_util.tree_map(lambda g, p: g + weight_decay * p, grads, params)
  if momentum:
    mom = jax.tree_util.tree_map(lambda g, m: g + momentum * m, grads, mom)
  else:
    mom = grads
  params = jax.tree_util.tree_map(lambda p, m: p - lr.astype(p.dtype) * m, params, mom)
  return params, mom


def _where(flag, old, new):
  return jax.tree_util.tree_map(lambda o, n: jnp.where(flag, o, n), old, new)


@dataclasses.dataclass(frozen=True)
class Unroll:
  """Static options of an unroll; see the module docstring (`make_unroll` builds one).

  Attributes:
    apply_fn: the model's `apply(params, model_state, x, train) -> (logits, model_state)`.
    objective: (logits, labels, lam) -> scalar loss; default `sd_loss` (λ = 0: cross-entropy).
    momentum, weight_decay: the SGD recipe (both models).
    record: `scalars`, `every` (weights every `every` steps) or `full` (every step).
    every: chunk length K: snapshots and σ every K steps; the Python driver's steps per call.
    checkpoint_every: F of the checkpointed unlearning error (None: no reset).
    sigma: measure the top Hessian eigenvalue at each chunk end (needs `hx`, `hy` in data).
    power_tol, power_max_iter: the power iteration's stopping rule.
    single_gradient: compute g0 = ∇L̄(w_0; B*) (train mode) and record `ver_sg*`.
    inner_unroll: `unroll=` of the inner `lax.scan` over the K steps of a chunk (True: fully).
  """
  apply_fn: Callable
  objective: Callable = sd_loss
  momentum: float = 0.0
  weight_decay: float = 0.0
  record: str = "scalars"
  every: int = 1
  checkpoint_every: Optional[int] = None
  sigma: bool = False
  power_tol: float = 1e-3
  power_max_iter: int = 100
  single_gradient: bool = True
  inner_unroll: Any = 1

  def __post_init__(self):
    if self.record not in RECORDS:
      raise ValueError(f"unknown record mode {self.record!r}; choose one of {', '.join(RECORDS)}")
    if int(self.every) != self.every or self.every < 1:
      raise ValueError(f"every must be an integer >= 1, got {self.every}")
    if self.checkpoint_every is not None and (int(self.checkpoint_every) != self.checkpoint_every
                                              or self.checkpoint_every < 1):
      raise ValueError(f"checkpoint_every must be an integer >= 1 or None, got "
                       f"{self.checkpoint_every}")
    if not 0 <= self.momentum < 1:
      raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
    if self.weight_decay < 0:
      raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

  # -- pieces --------------------------------------------------------------------------------

  def _loss(self, params, model_state, x, y, lam, train: bool):
    logits, new_state = self.apply_fn(params, model_state, x, train)
    return self.objective(logits, y, lam), new_state

  def _grad(self, params, model_state, x, y, lam):
    (loss, new_state), g = jax.value_and_grad(
        lambda p: self._loss(p, model_state, x, y, lam, True), has_aux=True)(params)
    return loss, new_state, g

  def _power(self, params, model_state, hx, hy, lam, v0):
    loss = lambda p: self._loss(p, model_state, hx, hy, lam, False)[0]
    return top_eigenvalue(loss, params, v0, tol=self.power_tol, max_iter=self.power_max_iter)

  # -- the pure functions --------------------------------------------------------------------

  def init(self, params, model_state, steps, data, lam, key=None) -> dict:
    """The carry before step 1: both models at w_0, fresh momentum, g0, σ at w_0."""
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    lam = jnp.asarray(lam, jnp.float32)
    carry = dict(w=params, m=zeros, s=model_state, w2=params, m2=zeros, s2=model_state,
                 w0=params, wc=params, t=jnp.int32(0), c_sg=jnp.float32(0.0),
                 b=jnp.float32(0.0), c_mom=jnp.float32(0.0), lam=lam)
    if self.single_gradient:
      first = jnp.argmax(jnp.asarray(steps["forget"]))  # the first forget step's batch is B*
      idx = jnp.asarray(steps["idx"])[first]
      _, _, g0 = self._grad(params, model_state, data["x"][idx], data["y"][idx], lam)
      carry["g0"] = g0
    chunk0 = {}
    if self.sigma:
      if key is None:
        raise ValueError("sigma=True needs a PRNG key (the power iteration's start vector)")
      leaves, tdef = jax.tree_util.tree_flatten(params)
      keys = jax.random.split(key, len(leaves))
      v0 = jax.tree_util.tree_unflatten(tdef, [jax.random.normal(k, l.shape, jnp.float32)
                                               for k, l in zip(keys, leaves)])
      res = self._power(params, model_state, data["hx"], data["hy"], lam, v0)
      carry["v"] = res.eigenvector
      chunk0 = {"eigenvalue": res.eigenvalue, "power_iterations": res.iterations}
    return carry, chunk0

  def step(self, carry, xs, data):
    """One lockstep SGD step of M and M' (xs = idx [B], forget flag, lr)."""
    idx, flag, lr = xs["idx"], xs["forget"], xs["lr"]
    lr = jnp.asarray(lr, jnp.float32)
    xb, yb = data["x"][idx], data["y"][idx]
    lam = carry["lam"]
    loss, s, g = self._grad(carry["w"], carry["s"], xb, yb, lam)
    w, m = _sgd(carry["w"], carry["m"], g, lr, self.momentum, self.weight_decay)
    loss2, s2, g2 = self._grad(carry["w2"], carry["s2"], xb, yb, lam)
    w2, m2 = _sgd(carry["w2"], carry["m2"], g2, lr, self.momentum, self.weight_decay)
    w2, m2, s2 = (_where(flag, carry[k], new) for k, new in (("w2", w2), ("m2", m2), ("s2", s2)))
    t = carry["t"] + 1
    f = flag.astype(jnp.float32)
    new = dict(carry, w=w, m=m, s=s, w2=w2, m2=m2, s2=s2, t=t)
    rec = {"loss": loss, "loss_retrain": jnp.where(flag, jnp.nan, loss2), "lr": lr,
           "forget": flag, "delta_w": tree_distance(w, carry["w0"]),
           "delta_ckpt": tree_distance(w, carry["wc"]), "ver_none": tree_distance(w, w2)}
    if self.single_gradient:
      c_sg = carry["c_sg"] + f * lr
      b = self.momentum * carry["b"] + f
      c_mom = carry["c_mom"] + lr * b
      new.update(c_sg=c_sg, b=b, c_mom=c_mom)
      g0 = carry["g0"]
      unlearned = lambda c: jax.tree_util.tree_map(lambda p, g: p + c * g, w, g0)
      rec["ver_sg"] = tree_distance(unlearned(c_sg), w2)
      rec["ver_sg_momentum"] = tree_distance(unlearned(c_mom), w2)
    if self.checkpoint_every:
      new["wc"] = _where(t % self.checkpoint_every == 0, w, carry["wc"])
    if self.record == "full":
      rec["w"], rec["w_retrain"] = flatten(w), flatten(w2)
    return new, rec

  def chunk(self, carry, steps, data):
    """`every` steps (steps: idx [K, B], forget [K], lr [K]), then σ and the snapshot."""
    carry, recs = jax.lax.scan(lambda c, xs: self.step(c, xs, data), carry,
                               {k: steps[k] for k in ("idx", "forget", "lr")},
                               unroll=self.inner_unroll)
    out = {}
    if self.sigma:
      res = self._power(carry["w"], carry["s"], data["hx"], data["hy"], carry["lam"], carry["v"])
      carry = dict(carry, v=res.eigenvector)
      out.update(eigenvalue=res.eigenvalue, power_iterations=res.iterations)
    if self.record == "every":
      out.update(w=flatten(carry["w"]), w_retrain=flatten(carry["w2"]))
    return carry, (recs, out)

  def run(self, params, model_state, steps, data, lam=0.0, key=None) -> dict:
    """The whole unroll as one `lax.scan` over chunks. Pure: jit and vmap it (or use `drive`).

    Args:
      params, model_state: w_0 (both models start here; fresh momentum buffers).
      steps: `idx` [T, B] int (rows of data["x"] per step), `forget` [T] bool (B*'s steps, which
        M' skips), `lr` [T] float (η per step). T must be a multiple of `every`.
      data: `x`, `y` (training set on device); `hx`, `hy` (the fixed Hessian batch) for σ.
      lam: SD-loss λ of `objective`.
      key: PRNG key of the power iteration's start vector (needed with `sigma`).
    Returns:
      {"steps": per-step records [T], "chunks": per-chunk records [T/every + 1] (σ at w_0
      first; snapshots [T/every]), "final": the last carry (params `w`/`w2`, momentum `m`/`m2`,
      model states `s`/`s2`, ...)}.
    """
    T = int(np.shape(steps["forget"])[0])
    k = self.every
    if T % k:
      raise ValueError(f"the number of steps {T} is not a multiple of every={k}; truncate the "
                       f"steps to {T - T % k} or choose an `every` that divides {T}")
    carry, chunk0 = self.init(params, model_state, steps, data, lam, key)
    xs = {n: jnp.reshape(jnp.asarray(steps[n]), (T // k, k, *np.shape(steps[n])[1:]))
          for n in ("idx", "forget", "lr")}
    carry, (recs, outs) = jax.lax.scan(lambda c, s: self.chunk(c, s, data), carry, xs)
    return finish(recs, outs, chunk0, carry)


def finish(recs, outs, chunk0, carry) -> dict:
  """Reshape chunked records [T/K, K, ...] to [T, ...]; prepend σ at w_0 to the chunk records."""
  steps = jax.tree_util.tree_map(lambda a: jnp.reshape(a, (-1, *a.shape[2:])), recs)
  chunks = dict(outs)
  for name, v0 in chunk0.items():
    chunks[name] = jnp.concatenate([jnp.asarray(v0)[None], outs[name]])
  return {"steps": steps, "chunks": chunks, "final": carry}


def make_unroll(apply_fn: Callable, **options) -> Unroll:
  """An `Unroll` with the given static options (see `Unroll`)."""
  return Unroll(apply_fn=apply_fn, **options)


def _batched(fn, in_axes):
  return fn if in_axes is None else jax.vmap(fn, in_axes=in_axes)


@functools.lru_cache(maxsize=64)
def _compiled(unroll: Unroll, part: str, in_axes):
  if part == "run":
    return jax.jit(_batched(unroll.run, in_axes))
  if part == "init":
    return jax.jit(_batched(unroll.init, in_axes))
  chunk_axes = None if in_axes is None else (0, in_axes[2], in_axes[3])
  return jax.jit(_batched(unroll.chunk, chunk_axes), donate_argnums=(0,))


def drive(unroll: Unroll, params, model_state, steps, data, lam=0.0, key=None, *,
          in_axes=None, driver: str = "scan") -> dict:
  """Run `unroll` jitted, vmapped with `in_axes` over (params, model_state, steps, data, lam,
  key) when given (e.g. (0, 0, 0, None, 0, 0): a sweep of N configurations over shared data).

  `driver="scan"`: one compiled program (`Unroll.run`). `driver="python"`: a Python loop over a
  jitted chunk of `every` steps (`inner_unroll=True` unrolls it), the fast choice for conv nets
  on XLA:CPU. Both give the same records (tested).
  """
  if driver not in DRIVERS:
    raise ValueError(f"unknown driver {driver!r}; choose one of {', '.join(DRIVERS)}")
  in_axes = None if in_axes is None else tuple(in_axes)
  args = (params, model_state, steps, data, lam, key)
  if driver == "scan":
    return _compiled(unroll, "run", in_axes)(*args)
  batched = in_axes is not None
  t_axis = 1 if batched and in_axes[2] == 0 else 0  # the step axis of `steps`
  T = int(np.shape(steps["forget"])[t_axis])
  k = unroll.every
  if T % k:
    raise ValueError(f"the number of steps {T} is not a multiple of every={k}")
  carry, chunk0 = _compiled(unroll, "init", in_axes)(*args)
  chunk = _compiled(unroll, "chunk", in_axes)
  recs, outs = [], []
  for c in range(T // k):
    part = {n: jax.lax.slice_in_dim(jnp.asarray(steps[n]), c * k, (c + 1) * k, axis=t_axis)
            for n in ("idx", "forget", "lr")}
    carry, (r, o) = chunk(carry, part, data)
    recs.append(r)
    outs.append(o)
  stack = lambda parts, axis: jax.tree_util.tree_map(
      lambda *a: jnp.stack(a, axis=axis), *parts)
  # match the scan driver's layout [(N,) T/K, K, ...] before `finish`
  recs_s, outs_s = stack(recs, int(batched)), stack(outs, int(batched))
  if not batched:
    return finish(recs_s, outs_s, chunk0, carry)
  return jax.vmap(finish)(recs_s, outs_s, chunk0, carry)


# ----------------------------------------------------------------------------------------------
# Data orders for the correlation study.


def forget_first_order(n: int, batch_size: int, forget_batch: np.ndarray, key, *,
                       epochs: int = 1, max_steps: Optional[int] = None):
  """Steps of a lockstep unroll with B* one batch at the front of every epoch (the public
  code's `data = batch_star + data_no_unlearned`).

  The other n - |B*| examples are permuted by `key` (once; every epoch replays that order, as
  the public code's unshuffled loader does) and cut into batches of `batch_size` (the last
  partial batch dropped). Returns numpy `idx` [T, B] and `forget` [T] (T = epochs · (1 + the
  rest's batches), or the first `max_steps`).
  """
  forget_batch = np.asarray(forget_batch, np.int64)
  if len(forget_batch) != batch_size:
    raise ValueError(f"B* must be exactly one batch of {batch_size}, got {len(forget_batch)}")
  rest = np.setdiff1d(np.arange(n), forget_batch)
  rest = rest[np.asarray(jax.random.permutation(key, len(rest)))]
  k = len(rest) // batch_size
  one = np.concatenate([forget_batch[None], rest[:k * batch_size].reshape(k, batch_size)])
  idx = np.concatenate([one] * epochs)
  forget = np.zeros(len(idx), bool)
  forget[::k + 1] = True
  if max_steps is not None:
    idx, forget = idx[:max_steps], forget[:max_steps]
  return idx, forget


__all__ = ["RECORDS", "SIGMA_FORMS", "DRIVERS", "sd_loss", "sd_objective", "logit_std_term",
           "flatten", "tree_norm", "tree_distance", "verification_error", "PowerResult", "hvp",
           "top_eigenvalue", "sigma_from_eigenvalue", "unlearning_error", "unlearning_errors",
           "Unroll", "make_unroll", "drive", "finish", "forget_first_order"]
