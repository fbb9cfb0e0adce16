"""Forgetting quality: the NeurIPS 2023 Machine Unlearning challenge score.

Reference: E. Triantafillou, P. Kairouz, F. Pedregosa, J. Hayes, M. Kurmanji, K. Zhao,
V. Dumoulin, J. Jacques Junior, I. Mitliagkas, J. Wan, L. Sun Hosoya, S. Escalera,
G. K. Dziugaite, P. Triantafillou, I. Guyon. "Are we making progress in unlearning? Findings from
the first NeurIPS unlearning competition", arXiv:2406.09073 (2024). The official evaluation code is
``metric.py`` of https://github.com/google-deepmind/unlearning_evaluation (commit ffae0ff;
PyTorch, CUDA only). This module is an independent, vectorized NumPy reimplementation that runs on
any CPU and gives the official per-example ε, example by example.

How it works, per forget-set example (``50-metrics.md`` §3):

1. Every one of ``M`` unlearned and ``M`` retrained models gives the example a logit-scaled
   confidence (:func:`logit_scaled_confidence`): two samples of size ``M``.
2. If one sample's spread (max - min) is below 1 % of the other's (``smallest / largest < 0.01``,
   as the official code writes it), that sample has collapsed (in practice, an unlearned model
   family that outputs nearly the same confidence whatever the seed) and the example gets
   ``ε = cap`` (50), without searching for rules.
3. Otherwise a dense grid of decision rules tries to tell the samples apart. Both grids are built
   with the official expressions, in its floating-point order (its pipeline, ``main.py``, feeds it
   float64 confidences, so its torch tensors are float64):

   * single threshold: "``c >= t`` is positive", the positive sample being the one with the larger
     median; ``torch.linspace(lo, hi, ceil(100 * (hi - lo)))`` over the range ``[lo, hi]`` of both
     samples, which torch builds in float32 (:func:`_torch_linspace_float32`);
   * double threshold: "``l <= c <= r`` is positive", the positive sample being the *peakier*
     one (smaller spread ``w``; on ties the smaller-median sample); right ends
     ``r = linspace(min_, max_, ceil(100 * (max_ - min_)))`` with ``min_ = peaky.min + w - 2`` and
     ``max_ = peaky.max + 2``, and for each ``r`` the 400 left ends
     ``linspace(r - w - 2, r - w + 2, 400)``, all float64 (:func:`_double_threshold_grid`). In
     exact arithmetic ``max_ - min_ = 4``: 400 right ends and left ends on one lattice of step
     ``4 / 399``, one of them on ``peaky.min`` in every row. Rounding changes both, and both change
     results: some examples (about 3 % of random ones) get 401 right ends, step 0.01 and one of
     them on ``peaky.max``; and in some rows the left end meant for ``peaky.min`` lands just above
     it, a rule that leaves out exactly the peaky sample's minimum.

   For each rule, FPR and FNR are fractions of the models of each sample, and
   ``ε = max(log(1 - δ - FPR) - log(FNR), log(1 - δ - FNR) - log(FPR))`` clipped at 0
   (``δ = 1e-5``). Rules with exactly one of FPR, FNR equal to 0 are discarded (too few samples
   to trust them); a rule with both 0 separates the samples perfectly and gives ``ε = ∞``.
   The example's ``ε`` is the max over rules, capped at 50.
4. :func:`forget_score` buckets each ``ε`` into half-unit bins worth ``1, 1/2, 1/4, ...`` points,
   for the ``2 * ceil(ln(M - 1))`` bins below ``ceil(ln(M - 1))`` (about the largest finite ``ε``
   that ``M`` models can certify); larger ``ε`` earns 0. The forget score is the mean.
5. :func:`forgetting_quality` multiplies by the retain- and test-accuracy ratios.

Precision. Thresholds are the official values bit for bit and every rule's counts are exact
(confidences compared in float64, as the official code compares them). ``ε`` is then computed in
float64 from the exact rates. The official code computes it in float32 (float32 rates from
``torch.mean``, ``1 - δ - FPR`` and the logs in float32 NumPy), so its ε differs from ours by
float32 rounding: by at most 1.1e-5 over every count pair with ``M <= 512`` (where FPR or FNR is
near 1, ``1 - δ - FPR`` loses digits in float32), and never by a score bucket (checked for every
``M`` from 3 to 512). We keep float64 because those float32 values are not one well-defined
target (float32 ``log`` differs by ulps between NumPy builds and CPUs) while the buckets, hence the
scores, are the same.

Speed (spec §3.6): instead of comparing every model with each of the ~160,000 double-threshold
rules (``M x 160,000`` comparisons per example) we sort each sample once and count by binary search
(:func:`numpy.searchsorted`). ``ε`` depends on a rule only through its pair of counts, so it is
read from an ``(M + 1) x (M + 1)`` table built once per call, and only rules with distinct count
pairs are visited. With 400 right ends the left ends are, up to float64 rounding, 799 lattice
points, counted once each; the few lattice points that a confidence lies on (always
``peaky.min``) are counted rule by rule with their exact left ends (:func:`_lattice_max`). With 401
right ends an ``[R, M_u + M_r]`` table of left-end positions per row gives each row's distinct
counts (:func:`_rows_max`). ``benchmarks/forgetting_quality.py`` (1,000 examples, single
process, median of 7, on 2 vCPUs of an Intel Xeon shared with other work; recorded in
``benchmarks/results/forgetting_quality_vm-x86_64-2cpu.json``): 0.20 s at ``M = 32``, 0.26 s at
``M = 128`` and 0.49 s at ``M = 512`` per side.

Where this implementation differs from the official code:

* :func:`logit_scaled_confidence` is exact (log-sum-exp over ``c != y``); the official code adds
  ``1e-45`` inside both logs, which caps ``|conf|`` near 103.6: different confidences, hence
  possibly different ε, for examples with such extreme logits.
* ``ε`` is float64, the official float32 (see Precision): ε differs by float32 rounding, the
  scores do not differ.
* If no rule survives (e.g. two identical constant samples: every rule has FPR and FNR in
  ``{0, 1}``), ``ε = 0`` (no evidence that the samples differ); the official code stops with an
  assertion error. As published it stops on every example that keeps more than one rule, since
  ``assert thr_eps`` asks for the truth value of a NumPy array; it runs once that line is read as
  ``assert len(thr_eps)``, the version compared with here.
* Rules with ``FPR = FNR = 1`` get ``ε = 0`` here; the official code gets NaN for both terms and
  discards them. This changes no ε (a max over rules is at least 0) except through the point above.
* The two samples may have different sizes (rates are fractions of each); bins then use the smaller
  size. The official code requires equal sizes.
* Inputs are converted to float64. Given float32 confidences the official code would build its
  double-threshold grid in float32; what is reproduced is its float64 case, the one its pipeline
  produces.
* The single-threshold grid is that of torch's AVX2 and AVX-512 CPU kernels (one rounding per
  element); on a CPU without AVX2 torch rounds twice and a threshold can differ by one float32 ulp.
* ``50-metrics.md`` §3.6 estimates the double-threshold family at "100·range × 400" rules; in the
  official code the right-end range is always about ``4`` (``peaky.max + 2 - (peaky.min + w - 2)``),
  so it is ``400 × 400`` (or ``401 × 400``) rules whatever the spread, and so it is here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
  "DELTA",
  "EPSILON_CAP",
  "logit_scaled_confidence",
  "per_example_epsilon",
  "num_score_bins",
  "forget_score",
  "forgetting_quality",
  "oracle_ceiling",
]

DELTA = 1e-5
"""The δ of (ε, δ)-indistinguishability used by the challenge."""
EPSILON_CAP = 50.0
"""Largest ε reported (perfect separation and collapsed samples get this value)."""
THRESHOLDS_PER_UNIT = 100
"""Grid density of both decision-rule families (thresholds per unit of confidence)."""
DOUBLE_THRESHOLD_BUFFER = 2.0
"""Half-width of the search window around the peaky sample (double-threshold family)."""
COLLAPSE_RATIO = 0.01
"""A sample whose spread is below this fraction of the other's is 'collapsed': ε = cap."""
BIN_WIDTH = 0.5
"""Width of the score buckets in ε."""


# ----------------------------------------------------------------------------------------------
# Confidences.


def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
  """Logit-scaled confidence of the true class, computed stably from logits.

  ``conf = log p_y - log(sum_{c != y} p_c) = z_y - logsumexp_{c != y} z_c`` for logits ``z``
  (the ``log Z`` normalizers cancel), as used by LiRA (Carlini et al., "Membership Inference
  Attacks From First Principles", S&P 2022) and by the NeurIPS 2023 unlearning challenge
  (Triantafillou et al. 2024). Unlike the official code, which computes ``log(p + 1e-45)``, this
  is exact for arbitrarily confident predictions.

  Args:
    logits: ``[..., n, C]`` array (NumPy or JAX), e.g. ``[n, C]`` for one model or ``[M, n, C]``
      for ``M`` models, ``C >= 2``.
    labels: integer labels ``[n]`` (broadcast over leading axes) or of the full leading shape
      ``[..., n]``.

  Returns:
    ``float64`` array of shape ``logits.shape[:-1]``.

  Raises:
    ValueError: on fewer than two classes, mismatched shapes or labels out of range.
  """
  z = np.asarray(logits, dtype=np.float64)
  y = np.asarray(labels)
  if z.ndim < 2:
    raise ValueError(f"logits must be [..., n, C], got shape {z.shape}")
  num_classes = z.shape[-1]
  if num_classes < 2:
    raise ValueError(f"need at least 2 classes, got {num_classes}")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {y.dtype}")
  if y.ndim == 0 or y.shape[-1] != z.shape[-2]:
    raise ValueError(f"labels shape {y.shape} does not match logits shape {z.shape}")
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
  y = np.broadcast_to(y, z.shape[:-1])
  true_logit = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
  is_true = np.arange(num_classes) == y[..., None]
  others = np.where(is_true, -np.inf, z)
  peak = others.max(axis=-1, keepdims=True)
  lse_others = peak[..., 0] + np.log(np.exp(others - peak).sum(axis=-1))
  return true_logit - lse_others


# ----------------------------------------------------------------------------------------------
# Per-example epsilon.


def _epsilon_table(num_pos: int, num_neg: int, delta: float) -> np.ndarray:
  """ε of a decision rule as a function of its counts of predicted positives (flattened).

  Entry ``a * (num_neg + 1) + b`` is the ε of a rule that predicts positive for ``a`` of the
  ``num_pos`` positive models and ``b`` of the ``num_neg`` negative ones, i.e.
  ``FNR = (num_pos - a) / num_pos`` and ``FPR = b / num_neg``:
  ``max(log(1 - δ - FPR) - log(FNR), log(1 - δ - FNR) - log(FPR))`` clipped at 0. A term whose
  ``log`` argument is not positive certifies nothing (``-inf``). Discarded rules (exactly one of
  FPR, FNR zero) hold ``-inf`` so that a max over rules ignores them; perfect separation (both
  zero) holds ``+inf``.
  """
  fnr = (num_pos - np.arange(num_pos + 1, dtype=np.float64))[:, None] / num_pos
  fpr = np.arange(num_neg + 1, dtype=np.float64)[None, :] / num_neg
  fnr, fpr = np.broadcast_arrays(fnr, fpr)

  def safe_log(x):
    return np.log(x, out=np.full(x.shape, -np.inf), where=x > 0)

  log_fpr, log_fnr = safe_log(fpr), safe_log(fnr)
  both_zero = (fpr == 0) & (fnr == 0)
  one_zero = (fpr == 0) ^ (fnr == 0)
  interior = ~(both_zero | one_zero)
  eps1 = safe_log(1.0 - delta - fpr) - np.where(interior, log_fnr, 0.0)
  eps2 = safe_log(1.0 - delta - fnr) - np.where(interior, log_fpr, 0.0)
  eps = np.maximum(np.maximum(eps1, eps2), 0.0)
  eps = np.where(both_zero, np.inf, np.where(one_zero, -np.inf, eps))
  return eps.reshape(-1)


# The grids. Both are built with the official code's expressions and in its floating-point order
# (``metric.py`` of google-deepmind/unlearning_evaluation at ffae0ff; its pipeline feeds it float64
# confidences, so its torch tensors are float64): the single-threshold grid is a float32
# ``torch.linspace`` (torch's default dtype), the double-threshold grid float64 ``numpy.linspace``
# calls. Decision rules compare float64 confidences with these values, as the official code does.

_NUM_LEFT = int(math.ceil(2 * DOUBLE_THRESHOLD_BUFFER * THRESHOLDS_PER_UNIT))  # 400 left ends.
# Below this |confidence| the row and lattice counting paths are exact (their float64 error bounds
# hold with a margin of ~10^5); beyond it every double-threshold rule is counted directly.
_MAX_FAST_MAGNITUDE = 2.0**20


def _linspace_step(start, stop, num: int):
  """The ``step`` of ``numpy.linspace(start, stop, num)``: ``(stop - start) / (num - 1)``."""
  if num < 2:  # NumPy multiplies by ``stop - start`` instead; element 0 is ``start`` either way.
    return np.zeros_like(np.asarray(start, dtype=np.float64))
  return (np.asarray(stop, dtype=np.float64) - start) / (num - 1)


def _linspace_at(start, stop, step, num: int, j):
  """Element ``j`` of ``numpy.linspace(start, stop, num)`` as NumPy computes it.

  NumPy forms ``j * step`` and then adds ``start`` (two roundings) and sets the last element to
  ``stop`` itself (``numpy/_core/function_base.py``). All arguments broadcast.
  """
  inner = j * step + start
  return np.where(j == num - 1, stop, inner) if num > 1 else inner


def _round_sum_to_float32(base: np.ndarray, addend: np.ndarray) -> np.ndarray:
  """``base + addend`` rounded once to float32 (a fused multiply-add when ``addend`` is an exact
  product), for float64 inputs; returned as float64.

  The float64 sum is exact unless the operands' bits span more than 53 places (a start or end
  tiny beside the step, or magnitudes beyond ~2^21); its rounding error is recovered exactly
  (Knuth's two-sum), and a float64 sum that lands exactly halfway between two float32 values,
  where rounding it again would be a double rounding, is sent the way its error points.
  """
  s = base + addend
  b_virtual = s - base
  err = (base - (s - b_virtual)) + (addend - b_virtual)
  y = s.astype(np.float32)
  y64 = y.astype(np.float64)
  toward = np.nextafter(y, np.where(s > y64, np.float32(np.inf), np.float32(-np.inf)))
  halfway = (err != 0) & (s != y64) & (s == (y64 + toward.astype(np.float64)) / 2)
  # Ties-to-even chose y; the exact value lies beyond the midpoint when err points away from y.
  away = halfway & ((err > 0) == (s > y64))
  return np.where(away, toward, y).astype(np.float64)


def _torch_linspace_float32(start: float, end: float, steps: int) -> np.ndarray:
  """``torch.linspace(start, end, steps)`` in torch's default float32, as float64 values.

  Torch 2.2's CPU kernel (``aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp``; the official
  code builds this grid on the CPU even when it runs on CUDA) rounds ``start`` and ``end`` to
  float32, takes ``step = (end - start) / (steps - 1)`` in float32 and returns
  ``start + step * k`` for ``k < steps // 2`` and ``end - step * (steps - 1 - k)`` after; its
  AVX2 and AVX-512 builds, the ones a current x86-64 CPU runs, compute each as one fused
  multiply-add (checked against torch 2.2.0; the baseline build, for CPUs without AVX2, rounds
  twice). ``steps == 1`` gives ``[start]``.
  """
  if steps <= 0:
    return np.empty(0)
  start32, end32 = np.float32(start), np.float32(end)
  if steps == 1:
    return np.array([float(start32)])
  step32 = (end32 - start32) / np.float32(steps - 1)
  half = steps // 2
  base = np.empty(steps)
  base[:half], base[half:] = start32, end32
  k = np.arange(steps, dtype=np.float64)
  k[half:] -= steps - 1  # end + step * (k - steps + 1)
  addend = k * np.float64(step32)  # exact: 24-bit step times an integer below 2^29.
  # The float64 sums are exact, hence rounded once to float32, unless the operands' bits span
  # more than 53 places (start or end tiny beside the step, or beyond ~2^21).
  bits = [math.frexp(float(x))[1] for x in (start32, end32, step32) if x != 0]
  top = math.frexp(2 * (abs(float(start32)) + abs(float(end32))) + 1e-300)[1]
  if steps < 2**29 and top - (min(bits) - 24) <= 53:
    return (base + addend).astype(np.float32).astype(np.float64)
  return _round_sum_to_float32(base, addend)


def _single_threshold_max(pos: np.ndarray, neg: np.ndarray, table: np.ndarray) -> float:
  """Max ε over the single-threshold rules 'c >= t is positive' (positive: larger median).

  ``pos``/``neg`` are sorted; ``table`` is the flat :func:`_epsilon_table` with ``pos`` positive.
  The official grid: ``torch.linspace(lo, hi, ceil((hi - lo) * 100))`` over the range
  ``[lo, hi]`` of both samples, the count taken in float64 (:func:`_torch_linspace_float32`).
  """
  lo, hi = min(pos[0], neg[0]), max(pos[-1], neg[-1])
  thresholds = _torch_linspace_float32(lo, hi, int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
  if thresholds.size == 0:  # Both samples are the same constant: nothing to threshold.
    return -np.inf
  # #{c >= t} = M - #{c < t}.
  k_pos = pos.size - np.searchsorted(pos, thresholds, side="left")
  k_neg = neg.size - np.searchsorted(neg, thresholds, side="left")
  return float(table[k_pos * (neg.size + 1) + k_neg].max())


def _double_threshold_grid(peaky_min: float, peaky_max: float, width: float):
  """The official double-threshold grid around the peaky sample (spread ``width``).

  ``num_right = ceil((max_ - min_) * 100)`` right ends ``r = linspace(min_, max_, num_right)``
  with ``min_ = peaky.min + width - 2`` and ``max_ = peaky.max + 2``, and for each right end
  ``r`` the row of 400 left ends ``linspace(r - width - 2, r - width + 2, 400)``, all in float64
  and in the official order of operations. In exact arithmetic ``max_ - min_ = 4``; rounding
  makes ``num_right`` 401 for some examples (step 0.01, and a right end on ``peaky.max``).

  Returns ``(right, row_lo, row_hi, row_step)``, each ``[num_right]``: the right ends and, per
  row, the first and last left end and the row's step (:func:`_linspace_at` gives left end
  ``j`` of a row).
  """
  lo = peaky_min + width - DOUBLE_THRESHOLD_BUFFER
  hi = peaky_max + DOUBLE_THRESHOLD_BUFFER
  num_right = max(int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT)), 0)
  right = _linspace_at(lo, hi, _linspace_step(lo, hi, num_right), num_right, np.arange(num_right))
  centre = right - width
  row_lo = centre - DOUBLE_THRESHOLD_BUFFER
  row_hi = centre + DOUBLE_THRESHOLD_BUFFER
  return right, row_lo, row_hi, _linspace_step(row_lo, row_hi, _NUM_LEFT)


def _packed_counts(peaky: np.ndarray, other: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
  """``#{peaky <side> x} * (other.size + 1) + #{other <side> x}`` (``side``: ``searchsorted``'s)."""
  return np.searchsorted(peaky, x, side=side) * (other.size + 1) + np.searchsorted(
    other, x, side=side
  )


def _double_threshold_max(peaky: np.ndarray, other: np.ndarray, table: np.ndarray) -> float:
  """Max ε over the rules 'l <= c <= r is positive' (positive: the peaky sample) of the grid.

  Rule ``(i, j)`` is ``[left[i, j], right[i]]``. Its counts are ``#{c <= r} - #{c < l}`` for both
  samples, packed into one flat table index ``a * (M_other + 1) + b`` as ``K[i] - H[i, j]`` with
  ``K`` the packed counts ``<= right[i]`` and ``H`` those ``< left[i, j]`` (binary searches on the
  sorted samples). For an empty interval (``l > r``) both differences are ``<= 0`` and the index is
  clipped to 0, the discarded rule 'nothing is positive'. ``ε`` depends on a rule only through its
  index, so only distinct ``(K, H)`` pairs are visited: with 400 right ends the lattice path
  (:func:`_lattice_max`), else the row path (:func:`_rows_max`), and for confidences beyond
  ``2^20`` every rule (:func:`_exhaustive_max`); all three count every rule of the official grid.

  Args:
    peaky, other: sorted samples; ``peaky`` has the smaller spread (ties: the negative sample).
    table: flat :func:`_epsilon_table` with ``peaky`` positive.
  """
  width = peaky[-1] - peaky[0]
  right, row_lo, row_hi, row_step = _double_threshold_grid(peaky[0], peaky[-1], width)
  if right.size == 0:
    return -np.inf
  k_packed = _packed_counts(peaky, other, right, "right")  # [R], non-decreasing.
  grid = (right, row_lo, row_hi, row_step, k_packed)
  magnitude = max(abs(peaky[0]), abs(peaky[-1])) + 2 * DOUBLE_THRESHOLD_BUFFER + 1.0
  if magnitude > _MAX_FAST_MAGNITUDE:
    return _exhaustive_max(peaky, other, table, grid)
  # Absolute tolerance for 'a confidence may tie with a left end': float64 rounding moves the
  # grid by at most ~20 * 2^-52 * magnitude, about 10^5 times less than this.
  tol = 2.0**-30 * magnitude
  if right.size == _NUM_LEFT:
    return _lattice_max(peaky, other, table, grid, tol)
  return _rows_max(peaky, other, table, grid, tol)


def _exhaustive_max(peaky, other, table, grid) -> float:
  """Every double-threshold rule, each left end computed and counted by binary search."""
  _, row_lo, row_hi, row_step, k_packed = grid
  left = _linspace_at(
    row_lo[:, None], row_hi[:, None], row_step[:, None], _NUM_LEFT, np.arange(_NUM_LEFT)
  )  # [R, 400]
  index = k_packed[:, None] - _packed_counts(peaky, other, left, "left")
  return float(table.take(np.maximum(index, 0)).max())


def _lattice_max(peaky, other, table, grid, tol: float) -> float:
  """Double-threshold max for 400 right ends (the usual case): a one-dimensional lattice.

  Right and left steps are then both ``4 / 399`` up to rounding, so left end ``(i, j)`` lies
  within float64 rounding of ``lam[i + j] = row_lo[0] + (i + j) * step``: 799 lattice points.
  Where no confidence lies within ``tol`` of ``lam[k]``, every rule with ``i + j = k`` counts
  exactly what ``lam[k]`` counts; the other diagonals (a confidence on a lattice point: always
  ``peaky.min`` at ``k = 399``, which the official rounding includes or excludes row by row) are
  counted rule by rule with the exact left ends.

  Elsewhere only distinct index values matter, so instead of all 160,000 rules runs are
  enumerated: consecutive right ends with equal ``K`` (a run ``[i0, i1]``) pair with the lattice
  points ``k`` in ``[i0, i1 + 399]`` (the union of their rows), and within that range only the
  distinct values of ``H`` (runs of ``H``, non-decreasing in ``k``) matter. Both run counts are at
  most ``2 M + 1``, so the work is ``O(min(M, 400)^2)`` table reads instead of 160,000.
  """
  right, row_lo, row_hi, row_step, k_packed = grid
  num_right = right.size
  step = _linspace_step(right[0], right[-1], num_right)
  num_k = num_right + _NUM_LEFT - 1
  lam = np.arange(num_k) * step + row_lo[0]
  # Diagonals with a confidence within tol of their lattice point: the counts below lam - tol and
  # up to lam + tol differ. Elsewhere the counts below lam - tol are those of every rule there.
  h_below = _packed_counts(peaky, other, lam - tol, "left")
  tied = np.flatnonzero(h_below != _packed_counts(peaky, other, lam + tol, "right"))
  best = -np.inf
  if tied.size:
    # All rules on the tied diagonals, with their exact left ends.
    first_i = np.maximum(tied - (_NUM_LEFT - 1), 0)
    counts = np.minimum(tied, num_right - 1) - first_i + 1
    i = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - first_i, counts)
    j = np.repeat(tied, counts) - i
    left = _linspace_at(row_lo[i], row_hi[i], row_step[i], _NUM_LEFT, j)
    index = k_packed[i] - _packed_counts(peaky, other, left, "left")
    best = float(table.take(np.maximum(index, 0)).max())
  # The other diagonals, through the lattice points.
  keep = np.ones(num_k, dtype=bool)
  keep[tied] = False
  k_kept = np.flatnonzero(keep)
  h_packed = h_below[k_kept]  # non-decreasing.
  # Runs of equal K over right ends i, and of equal H over kept lattice points.
  k_starts = np.flatnonzero(np.diff(k_packed, prepend=-1))
  k_stops = np.append(k_starts[1:], num_right) - 1  # inclusive.
  h_starts = np.flatnonzero(np.diff(h_packed, prepend=-1))
  # Kept positions in each K run's range [i0, i1 + 399], and the H runs they meet.
  lo = np.searchsorted(k_kept, k_starts, side="left")
  hi = np.searchsorted(k_kept, k_stops + (_NUM_LEFT - 1), side="right") - 1
  first = np.searchsorted(h_starts, lo, side="right") - 1
  last = np.searchsorted(h_starts, hi, side="right") - 1
  sizes = np.where(hi >= lo, last - first + 1, 0)
  if sizes.sum() == 0:
    return best
  # Ragged enumeration: for K run q, H runs first[q] .. last[q].
  owner = np.repeat(np.arange(sizes.size), sizes)
  h_run = np.arange(owner.size) - np.repeat(np.cumsum(sizes) - sizes, sizes) + first[owner]
  index = k_packed[k_starts][owner] - h_packed[h_starts][h_run]
  return max(best, float(table.take(np.maximum(index, 0)).max()))


def _rows_max(peaky, other, table, grid, tol: float) -> float:
  """Double-threshold max for any number of right ends (401 for some examples), row by row.

  Sort both samples together into ``c_1 <= ... <= c_n``. A left end ``l`` with
  ``c_m < l <= c_{m+1}`` has ``H = cum[m]``, the packed counts of the first ``m``. Row ``i`` has a
  left end in that gap iff ``g_i(c_{m+1}) > g_i(c_m)``, where ``g_i(c) = #{j : left[i, j] <= c}``
  (``c_0 = -inf``, ``c_{n+1} = +inf``), so the row's distinct ``H`` come from an ``[R, n]``
  table of ``g``. ``g`` is read off ``u = (c - row_lo) / row_step``; where ``c`` lies within
  ``tol`` of left end ``J`` (``u`` near the integer ``J``) it is decided exactly,
  ``g = J + [left[i, J] <= c]``. Rows with equal ``K`` are merged before the table is read.
  """
  _, row_lo, row_hi, row_step, k_packed = grid
  ncol = other.size + 1
  both = np.concatenate([peaky, other])
  order = np.argsort(both, kind="stable")
  c = both[order]
  cum_other = np.concatenate([[0], np.cumsum(order >= peaky.size)])
  cum = (np.arange(c.size + 1) - cum_other) * ncol + cum_other  # [n + 1]
  u = np.subtract(c[None, :], row_lo[:, None])
  u /= row_step[:, None]  # [R, n]
  # g = g_i(c) - 1, the last left end <= c (-1: none), is floor(u) away from integers.
  g = np.floor(u)
  frac = np.subtract(u, g, out=u)
  near = (frac <= tol / row_step[:, None]) | (frac >= 1 - tol / row_step[:, None])
  exact = None
  if near.any():
    rows, cols = np.nonzero(near)
    j = g[rows, cols] + (frac[rows, cols] > 0.5)  # J, the integer u is near.
    left = _linspace_at(
      row_lo[rows], row_hi[rows], row_step[rows], _NUM_LEFT, np.clip(j, 0, _NUM_LEFT - 1)
    )
    exact = np.clip(j - (left > c[cols]), -1, _NUM_LEFT - 1)
  np.clip(g, -1, _NUM_LEFT - 1, out=g)
  if exact is not None:
    g[rows, cols] = exact
  # Gap m (c_m, c_{m+1}] is hit by row i iff g_i rises there (c_0 = -inf, c_{n+1} = +inf).
  hits = np.empty((g.shape[0], c.size + 1), dtype=bool)
  np.greater(g[:, 1:], g[:, :-1], out=hits[:, 1:-1])
  hits[:, 0] = g[:, 0] > -1
  hits[:, -1] = g[:, -1] < _NUM_LEFT - 1
  k_starts = np.flatnonzero(np.diff(k_packed, prepend=-1))
  hits = np.logical_or.reduceat(hits, k_starts, axis=0)
  index = np.maximum(k_packed[k_starts][:, None] - cum[None, :], 0)
  return float(table.take(index[hits]).max())


def _validate_confidences(unlearned_conf, retrained_conf):
  u = np.asarray(unlearned_conf, dtype=np.float64)
  r = np.asarray(retrained_conf, dtype=np.float64)
  for name, a in (("unlearned_conf", u), ("retrained_conf", r)):
    if a.ndim != 2:
      raise ValueError(f"{name} must be [num_models, num_examples], got shape {a.shape}")
    if a.shape[0] < 2:
      raise ValueError(f"{name} needs at least 2 models, got {a.shape[0]}")
    if a.shape[1] == 0:
      raise ValueError(f"{name} has no examples")
    if not np.all(np.isfinite(a)):
      raise ValueError(f"{name} has non-finite values")
  if u.shape[1] != r.shape[1]:
    raise ValueError(f"different numbers of examples: {u.shape[1]} vs {r.shape[1]}")
  return u, r


def per_example_epsilon(
  unlearned_conf: Any,
  retrained_conf: Any,
  *,
  delta: float = DELTA,
  cap: float = EPSILON_CAP,
  chunk_size: int = 256,
) -> np.ndarray:
  """Per-example ε of (ε, δ)-indistinguishability between unlearned and retrained models.

  Definition (Triantafillou et al. 2024; ``50-metrics.md`` §3.2): for each forget
  example, the largest ε certified by any rule of the single- and double-threshold families,
  ``ε = max(log(1 - δ - FPR) - log(FNR), log(1 - δ - FNR) - log(FPR))`` clipped at 0, with rules
  having exactly one of FPR, FNR zero discarded and perfect separation giving ``∞``; capped at
  ``cap``. A sample whose spread (max - min) is below 1 % of the other's gives ``cap``. The grids
  are the official ones (``metric.py`` of google-deepmind/unlearning_evaluation), and so is each
  example's ε up to float32 rounding; see the module docstring for the grids, the precision and
  the remaining differences from the official code.

  The positive sample of the single-threshold family is the one with the larger median (ties:
  unlearned); the positive sample of the double-threshold family is the one with the smaller
  spread (ties: the one with the smaller median), as in the official code.

  Args:
    unlearned_conf: ``[M_u, n]`` logit-scaled confidences of ``n`` forget examples under
      ``M_u >= 2`` unlearned models.
    retrained_conf: ``[M_r, n]`` the same under ``M_r >= 2`` retrained models. ``M_r`` may differ
      from ``M_u`` (rates are fractions of each sample); the challenge uses ``M_u = M_r = 512``.
    delta: the δ of the definition.
    cap: ε larger than this (including ``∞``) is reported as ``cap``.
    chunk_size: examples sorted at a time: memory is ``~(M_u + M_r) * chunk_size`` floats, plus
      two ``(M_u + 1) x (M_r + 1)`` float64 ε tables (2 MiB each at 512 models per side) and
      per-example work arrays: at most ``min(400, 2M + 1) x min(799, 2M + 1)`` table indices on
      the 400-right-end path, and about ``27 * 401 * (M_u + M_r)`` bytes on the 401 one (11 MiB
      at 512 per side; 9 MiB measured).

  Returns:
    ``float64`` array ``[n]`` with values in ``[0, cap]``.

  Raises:
    ValueError: on shapes that are not ``[M >= 2, n >= 1]`` with equal ``n``, non-finite values,
      or invalid ``delta``/``cap``/``chunk_size``.
  """
  u, r = _validate_confidences(unlearned_conf, retrained_conf)
  if not 0.0 <= delta < 1.0:
    raise ValueError(f"delta must lie in [0, 1), got {delta}")
  if not cap > 0:
    raise ValueError(f"cap must be > 0, got {cap}")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  num_u, num_r = u.shape[0], r.shape[0]
  n = u.shape[1]
  # Index tables by (#positive-sample models predicted positive, #negative-sample ...).
  table_u_pos = _epsilon_table(num_u, num_r, delta)
  table_r_pos = table_u_pos if num_u == num_r else _epsilon_table(num_r, num_u, delta)

  eps = np.empty(n, dtype=np.float64)
  for start in range(0, n, chunk_size):
    stop = min(start + chunk_size, n)
    us = np.sort(u[:, start:stop], axis=0).T  # [chunk, M_u], each row sorted.
    rs = np.sort(r[:, start:stop], axis=0).T
    retrain_is_pos = np.median(rs, axis=1) > np.median(us, axis=1)
    u_spread = us[:, -1] - us[:, 0]
    r_spread = rs[:, -1] - rs[:, 0]
    # The official test, smallest / largest < 0.01 (0 / 0, two constant samples, is not collapsed).
    with np.errstate(divide="ignore", invalid="ignore"):
      ratio = np.minimum(u_spread, r_spread) / np.maximum(u_spread, r_spread)
    collapsed = ratio < COLLAPSE_RATIO
    for j in range(stop - start):
      if collapsed[j]:
        eps[start + j] = np.inf
        continue
      if retrain_is_pos[j]:
        pos, neg, t_pos, t_neg = rs[j], us[j], table_r_pos, table_u_pos
      else:
        pos, neg, t_pos, t_neg = us[j], rs[j], table_u_pos, table_r_pos
      best = _single_threshold_max(pos, neg, t_pos)
      # Peaky = smaller spread; on ties the larger-median (positive) sample is *not* peaky.
      if pos[-1] - pos[0] < neg[-1] - neg[0]:
        best = max(best, _double_threshold_max(pos, neg, t_pos))
      else:
        best = max(best, _double_threshold_max(neg, pos, t_neg))
      eps[start + j] = best
  # No surviving rule (-inf) means no evidence of a difference: ε = 0.
  return np.clip(eps, 0.0, cap)


# ----------------------------------------------------------------------------------------------
# Scores.


def num_score_bins(num_models: int) -> int:
  """Number of half-unit ε bins that earn points: ``2 * ceil(ln(num_models - 1))``."""
  if num_models < 2:
    raise ValueError(f"num_models must be >= 2, got {num_models}")
  return int(round(2 * math.ceil(math.log(num_models - 1))))


def forget_score(eps: Any, num_models: int) -> float:
  """Forget score of the NeurIPS 2023 unlearning challenge from per-example ε.

  Each ε earns ``2^{-k}`` points where ``k = floor(ε / 0.5)`` is its half-unit bin
  (``[0, 0.5) -> 1``, ``[0.5, 1) -> 1/2``, ``[1, 1.5) -> 1/4``, ...), for bins lying below
  ``ceil(ln(num_models - 1))``, i.e. ``k < 2 * ceil(ln(num_models - 1))``; larger ε earns 0.
  The score is the mean over examples (Triantafillou et al. 2024; ``50-metrics.md`` §3.3). The
  log is natural, as in the official code: ``ln(M - 1)`` is about the largest finite ε that ``M``
  models per sample can certify (``FPR = 1/M``, ``FNR ≈ 1``). With ``M = 2`` no bin earns points.

  Args:
    eps: per-example ε ``[n]``, non-negative.
    num_models: models per sample (``M``); 512 in the challenge.

  Returns:
    The forget score in ``[0, 1]``.

  Raises:
    ValueError: on empty, negative or NaN ε, or ``num_models < 2``.
  """
  e = np.asarray(eps, dtype=np.float64).reshape(-1)
  if e.size == 0:
    raise ValueError("eps is empty")
  if np.any(np.isnan(e)) or np.any(e < 0):
    raise ValueError("eps must be non-negative and not NaN")
  num_bins = num_score_bins(num_models)
  k = np.floor(np.minimum(e, 1e6) / BIN_WIDTH)
  points = np.where(k < num_bins, np.exp2(-np.minimum(k, 1e3)), 0.0)
  return float(points.mean())


def _mean_accuracy(name: str, value: Any) -> float:
  a = np.asarray(value, dtype=np.float64)
  if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
    raise ValueError(f"{name} must be accuracies in [0, 1], got {value!r}")
  return float(a.mean())


def forgetting_quality(
  unlearned_conf: Any,
  retrained_conf: Any,
  *,
  retain_acc_unlearned: Any,
  retain_acc_retrained: Any,
  test_acc_unlearned: Any,
  test_acc_retrained: Any,
  delta: float = DELTA,
) -> dict[str, Any]:
  """Final score of the NeurIPS 2023 Machine Unlearning challenge.

  ``score = forget_score × (RA_unlearned / RA_retrained) × (TA_unlearned / TA_retrained)`` with
  RA/TA the mean retain/test accuracies over models (Triantafillou et al. 2024;
  ``50-metrics.md`` §3.4). The accuracy ratios are not clipped at 1.

  Args:
    unlearned_conf: ``[M_u, n]`` logit-scaled confidences of the forget set under the unlearned
      models (see :func:`logit_scaled_confidence`).
    retrained_conf: ``[M_r, n]`` the same under the retrained models.
    retain_acc_unlearned: retain accuracy of the unlearned models (a scalar or one per model;
      the mean is used). The other three accuracy arguments likewise.
    retain_acc_retrained: retain accuracy of the retrained models (must be > 0).
    test_acc_unlearned: test accuracy of the unlearned models.
    test_acc_retrained: test accuracy of the retrained models (must be > 0).
    delta: the δ of the definition.

  Returns:
    ``{"score", "forget_score", "retain_ratio", "test_ratio", "eps" ([n] array),
    "num_models" (used for the bins: ``min(M_u, M_r)``), "num_bins", "mean_eps"}``.
  """
  ra_u = _mean_accuracy("retain_acc_unlearned", retain_acc_unlearned)
  ra_r = _mean_accuracy("retain_acc_retrained", retain_acc_retrained)
  ta_u = _mean_accuracy("test_acc_unlearned", test_acc_unlearned)
  ta_r = _mean_accuracy("test_acc_retrained", test_acc_retrained)
  if ra_r == 0 or ta_r == 0:
    raise ValueError("retrained accuracies must be > 0 (they are denominators)")
  eps = per_example_epsilon(unlearned_conf, retrained_conf, delta=delta)
  num_models = min(np.shape(unlearned_conf)[0], np.shape(retrained_conf)[0])
  fs = forget_score(eps, num_models)
  retain_ratio, test_ratio = ra_u / ra_r, ta_u / ta_r
  return {
    "score": fs * retain_ratio * test_ratio,
    "forget_score": fs,
    "retain_ratio": retain_ratio,
    "test_ratio": test_ratio,
    "eps": eps,
    "mean_eps": float(eps.mean()),
    "num_models": int(num_models),
    "num_bins": num_score_bins(num_models),
  }


def oracle_ceiling(
  retrained_conf: Any,
  *,
  seed: int = 0,
  split: tuple[Any, Any] | None = None,
  delta: float = DELTA,
) -> dict[str, Any]:
  """Attainable forgetting-quality score: retrained models against disjoint retrained models.

  The ``M`` retrained models are shuffled (``numpy.random.default_rng(seed)``) and split into two
  disjoint halves of ``M // 2`` models (one model is left out when ``M`` is odd); one half plays
  the "unlearned" models, the other the retrained ones, with accuracy ratios of 1. Two samples of
  one distribution do not score 1 at finite ``M`` (the threshold search finds sampling noise in
  the tails), so this, not 1, is the ceiling to show beside methods (``50-metrics.md`` §3.5).
  Note that it is computed with ``M // 2`` models per sample, hence ``2 * ceil(ln(M // 2 - 1))``
  bins. With ``split=(a, b)`` the two groups are given instead: the models ``a`` play the
  unlearned ones, ``b`` the retrained ones (disjoint, of equal size ``>= 2``); a report uses it to
  score the ceiling against the same retrained models its methods are scored against.

  Args:
    retrained_conf: ``[M, n]`` logit-scaled confidences under ``M >= 4`` retrained models.
    seed: seed of the random split (ignored when ``split`` is given).
    split: optional ``(a, b)``, two disjoint index sequences of equal length.
    delta: the δ of the definition.

  Returns:
    The :func:`forgetting_quality` dict (``score == forget_score``) plus ``"split"``: the two
    arrays of model indices.
  """
  r = np.asarray(retrained_conf, dtype=np.float64)
  if r.ndim != 2 or r.shape[0] < 4:
    raise ValueError(f"retrained_conf must be [M >= 4, n], got shape {r.shape}")
  if split is None:
    perm = np.random.default_rng(seed).permutation(r.shape[0])
    half = r.shape[0] // 2
    a, b = np.sort(perm[:half]), np.sort(perm[half : 2 * half])
  else:
    a, b = (np.asarray(i, dtype=np.int64).reshape(-1) for i in split)
    if (
      len(a) != len(b)
      or len(a) < 2
      or np.intersect1d(a, b).size
      or len(np.unique(a)) != len(a)
      or len(np.unique(b)) != len(b)
      or min(a.min(), b.min()) < 0
      or max(a.max(), b.max()) >= r.shape[0]
    ):
      raise ValueError(
        f"split must be two disjoint groups of >= 2 distinct model indices in "
        f"[0, {r.shape[0]}) of equal size, got {a.tolist()} and {b.tolist()}"
      )
  out = forgetting_quality(
    r[a],
    r[b],
    retain_acc_unlearned=1.0,
    retain_acc_retrained=1.0,
    test_acc_unlearned=1.0,
    test_acc_retrained=1.0,
    delta=delta,
  )
  out["split"] = (a, b)
  return out
