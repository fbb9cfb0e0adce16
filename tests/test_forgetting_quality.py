"""Forgetting quality (NeurIPS 2023 unlearning challenge) against hand computations, a slow literal
reference of the official scorer, and per-example ε recorded from the official scorer itself."""

import hashlib
import importlib
import math
import pathlib
from fractions import Fraction

import numpy as np
import pytest

from unlearn_jax import metrics

fq = importlib.import_module("unlearn_jax.metrics.forgetting_quality")  # (the function shadows it)

DELTA = 1e-5
DATA = pathlib.Path(__file__).parent / "data"
# Our ε is float64, the official one float32 (float32 rates, `1 - δ - FPR` and logs): they agree to
# float32 precision, at worst 1.1e-5 (over all count pairs up to M = 512; where FPR or FNR is
# near 1, `1 - δ - FPR` loses digits in float32).
FLOAT32 = dict(rtol=1e-6, atol=2e-5)


def _column(values):
  """[M] values of one example -> [M, 1] confidences."""
  return np.asarray(values, dtype=float)[:, None]


# ---------------------------------------------------------------------------------------------
# Literal reference of the official scorer: ``metric.py`` of google-deepmind/unlearning_evaluation
# (commit ffae0ff) on float64 confidences, as its pipeline (``main.py``) feeds it. Written from
# that definition, rule by rule with direct comparisons, and independent of the module's code:
# the same expressions, the same float64/float32 steps, float32 rates and ε like its torch code.


def _round_to_float32(x: Fraction) -> float:
  """The float32 nearest to the exact rational ``x`` (ties to even)."""
  y = np.float32(float(x))
  candidates = [np.nextafter(y, np.float32(-np.inf)), y, np.nextafter(y, np.float32(np.inf))]

  def key(c):
    return abs(Fraction(float(c)) - x), int(np.array(c).view(np.uint32)) & 1

  return float(min(candidates, key=key))


def _ref_torch_linspace(start, end, steps):
  """``torch.linspace(start, end, steps)`` (default float32) as torch 2.2's CPU kernel computes
  it on AVX2 / AVX-512 CPUs: ``start``/``end`` rounded to float32, ``step = (end - start) /
  (steps - 1)`` in float32, element ``k`` = ``start + step * k`` for ``k < steps // 2`` else
  ``end - step * (steps - 1 - k)``, each rounded once (a fused multiply-add)."""
  if steps <= 0:
    return np.empty(0)
  s, e = np.float32(start), np.float32(end)
  if steps == 1:
    return np.array([float(s)])
  step = Fraction(float((e - s) / np.float32(steps - 1)))
  fs, fe = Fraction(float(s)), Fraction(float(e))
  half = steps // 2
  return np.array(
    [
      _round_to_float32(fs + step * k if k < half else fe - step * (steps - 1 - k))
      for k in range(steps)
    ]
  )


def _rate(inside):
  """torch.mean over the models of a float32 0/1 tensor: the float32 nearest count / M."""
  return inside.sum(0).astype(np.float32) / np.float32(inside.shape[0])


def _ref_single_threshold_rates(pos, neg):
  lo, hi = np.concatenate([pos, neg]).min(), np.concatenate([pos, neg]).max()
  t = _ref_torch_linspace(lo, hi, int(np.ceil((hi - lo) * 100)))  # float64 tensor math, ceil.
  tpr, fpr = _rate(pos[:, None] >= t), _rate(neg[:, None] >= t)
  tnr, fnr = _rate(neg[:, None] < t), _rate(pos[:, None] < t)
  return tpr, fnr, fpr, tnr


def _ref_double_threshold_rates(pos, neg):
  pos_diff, neg_diff = pos.max() - pos.min(), neg.max() - neg.min()
  smallest = neg_diff if pos_diff > neg_diff else pos_diff
  if pos_diff >= neg_diff:  # 'positive' is now the peakier sample.
    pos, neg = neg, pos
  width, buffer = smallest, 2.0
  min_ = pos.min() + width - buffer
  max_ = pos.max() + buffer
  right = np.linspace(min_, max_, num=int(np.ceil((max_ - min_) * 100)))
  rates = []
  for tr in right:  # One row of 400 rules [l, tr] per right end.
    left = np.linspace(tr - width - buffer, tr - width + buffer, num=int(np.ceil(2 * buffer * 100)))
    in_pos = (left <= pos[:, None]) & (pos[:, None] <= tr)
    in_neg = (left <= neg[:, None]) & (neg[:, None] <= tr)
    rates.append((_rate(in_pos), _rate(~in_pos), _rate(in_neg), _rate(~in_neg)))
  return [np.concatenate(r) for r in zip(*rates)] if rates else [np.empty(0, np.float32)] * 4


def _ref_rule_epsilons(tpr, fnr, fpr, tnr):
  """ε of every rule, float32; NaN: discarded (exactly one of FPR, FNR zero, or no term)."""
  eps = np.zeros(tpr.shape, np.float32)
  eps[(fpr + fnr == 0) & (tpr + tnr == 2)] = np.inf  # perfect separation.
  eps[(eps == 0) & (fpr * fnr == 0)] = np.nan
  with np.errstate(all="ignore"):
    terms = np.stack([np.log(1 - DELTA - fpr) - np.log(fnr), np.log(1 - DELTA - fnr) - np.log(fpr)])
    both_nan = np.isnan(terms).all(0)
    value = np.clip(np.where(both_nan, np.nan, np.nanmax(np.where(both_nan, 0, terms), 0)), 0, None)
  return np.where(eps == 0, value, eps)


def _reference_eps(u, r):
  """Official per-example ε of one example (``u``, ``r``: [M] confidences); None where the official
  code stops with an assertion error (no rule survives)."""
  pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
  pos_diff, neg_diff = np.max(pos) - np.min(pos), np.max(neg) - np.min(neg)
  largest = pos_diff if pos_diff > neg_diff else neg_diff
  smallest = neg_diff if pos_diff > neg_diff else pos_diff
  with np.errstate(all="ignore"):
    if smallest / largest < 0.01:
      return 50.0
  rates = zip(_ref_double_threshold_rates(pos, neg), _ref_single_threshold_rates(pos, neg))
  eps = _ref_rule_epsilons(*[np.concatenate(pair) for pair in rates])
  kept = eps[~np.isnan(eps)]
  return None if kept.size == 0 else float(np.clip(kept.max(), 0, 50))


def _reference_forget_score(eps, num_models):
  """The official bucketing: half-unit buckets below ceil(ln(M - 1)) worth 1, 1/2, 1/4, ..."""
  max_epsilon = np.ceil(np.log(num_models - 1))
  buckets, start, points = {}, 0.0, 1.0
  while start + 0.5 <= max_epsilon:
    buckets[start], points, start = points, points / 2, start + 0.5
  total = 0.0
  for e in eps:
    for start, points in buckets.items():
      if e < start + 0.5:
        total += points
        break
  return total / len(eps)


def _assert_matches_reference(u, r, label=""):
  got = metrics.per_example_epsilon(u, r)
  want = np.array([_reference_eps(u[:, i], r[:, i]) for i in range(u.shape[1])], dtype=float)
  np.testing.assert_allclose(got, want, **FLOAT32, err_msg=label)
  m = min(u.shape[0], r.shape[0])
  assert metrics.forget_score(got, m) == _reference_forget_score(want, m), label
  return got


def _num_right_ends(a, b):
  """Number of right ends of the official double-threshold grid of one example."""
  peaky = b if np.ptp(a) >= np.ptp(b) else a
  w = np.ptp(peaky)
  return math.ceil((peaky.max() + 2 - (peaky.min() + w - 2)) * 100)


def _random_cases(rng, num_models, num_examples):
  """[M, n] confidence pairs of every kind the comparison with the official scorer used, in this
  order: narrow (one sample 1-5 % of the other's spread), 401 right ends (shifted until the
  official grid has them), tied (rounded) and shared values, identical, shifted, separated,
  collapsed and mixed samples, at assorted centres."""
  u = np.empty((num_models, num_examples))
  r = np.empty((num_models, num_examples))
  for i in range(num_examples):
    kind = i % 9
    c = rng.normal(0, 4) if i % 5 else rng.normal(0, 30)
    s = rng.uniform(0.2, 2.0)
    a = c + s * rng.normal(size=num_models)
    b = c + s * rng.normal(size=num_models)  # identical (kind 4) and the base of others.
    if kind == 0:
      z = rng.normal(size=num_models)
      frac = rng.uniform(0.01, 0.05)
      b = c + s * rng.normal() + frac * np.ptp(a) * z / max(np.ptp(z), 1e-12)
    elif kind == 1:
      spread = s * rng.uniform(0.3, 3)
      b = c + rng.choice([-1, 1]) * rng.uniform(0.0, 1.0) + spread * rng.normal(size=num_models)
      while _num_right_ends(a, b) != 401:
        shift = rng.uniform(-5, 5)
        a, b = a + shift, b + shift
    elif kind == 2:
      dec = int(rng.integers(0, 3))
      b = c + 0.3 * rng.normal() + s * rng.normal(size=num_models)
      a, b = np.round(a, dec), np.round(b, dec)
    elif kind == 3:
      k = int(rng.integers(1, num_models + 1))
      b[:k] = a[rng.permutation(num_models)[:k]]
    elif kind == 5:
      b = c + rng.choice([-1, 1]) * rng.uniform(0.2, 1.5) + s * rng.normal(size=num_models)
    elif kind == 6:
      b = c + rng.choice([-1, 1]) * rng.uniform(3, 20) + s * rng.normal(size=num_models)
    elif kind == 7:
      b = c + s * rng.normal() + s * rng.uniform(5e-4, 9e-3) * rng.normal(size=num_models)
    elif kind == 8:
      z = rng.random(num_models) < 0.5
      b = np.where(z, b, c + 2 + 0.3 * s * rng.normal(size=num_models))
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # the official code stops on two constants.
      b = b + np.arange(num_models) * 0.1
    u[:, i], r[:, i] = (a, b) if rng.random() < 0.5 else (b, a)
  return u, r


def test_reference_matches_recorded_official_scorer():
  # The literal reference against the official scorer's own output (a sample of the data file).
  data = np.load(DATA / "forgetting_quality_official.npz")
  for m in (3, 8, 64):
    u, r, official = data[f"u{m}"][:, :6], data[f"r{m}"][:, :6], data[f"eps{m}"][:6]
    want = [_reference_eps(u[:, i], r[:, i]) for i in range(u.shape[1])]
    np.testing.assert_array_equal(np.float32(want), np.float32(official), err_msg=f"M={m}")


def test_equals_recorded_official_scorer_example_by_example():
  # Per-example ε of the official scorer itself (metric.py @ ffae0ff with torch 2.2.0 and NumPy
  # 1.26.4 on an AVX-512 CPU, made to run on the CPU and with `assert thr_eps` read as
  # `assert len(thr_eps)`), on random examples of every kind and on examples where the simplified
  # grid this module used before gave another ε ("search"): ours equals it to float32 precision,
  # and the forget scores (the official bucketing of its ε, which reproduces its recorded scores)
  # are identical.
  data = np.load(DATA / "forgetting_quality_official.npz")
  sizes = sorted(int(k[3:]) for k in data.files if k.startswith("eps"))
  assert {2, 3, 64, 128, 512} <= set(sizes)
  for m in sizes:
    u, r, official = data[f"u{m}"], data[f"r{m}"], data[f"eps{m}"]
    got = metrics.per_example_epsilon(u, r)
    np.testing.assert_allclose(got, official, **FLOAT32, err_msg=f"M={m}")
    assert metrics.forget_score(got, m) == _reference_forget_score(official, m), f"M={m}"
  # ("search": 29 examples where the simplified grid disagreed, found among 15,000 random ones.)
  assert sum((data[f"kinds{m}"] == "search").sum() for m in sizes) == 29


@pytest.mark.parametrize(
  "num_models, num_examples, seed",
  [(2, 24, 0), (3, 24, 1), (4, 16, 2), (7, 16, 3), (16, 16, 4), (64, 8, 5), (128, 4, 6)],
)
def test_matches_literal_reference_on_random_cases(num_models, num_examples, seed):
  u, r = _random_cases(np.random.default_rng(seed), num_models, num_examples)
  assert _num_right_ends(u[:, 1], r[:, 1]) == 401
  _assert_matches_reference(u, r, f"M={num_models}")


def test_matches_literal_reference_with_different_numbers_of_models():
  # Not an official case (it needs equal sizes); rates are fractions of each sample.
  rng = np.random.default_rng(11)
  u = rng.normal(0, 1, (5, 4))
  r = rng.normal(0.5, 1, (8, 4))
  got = metrics.per_example_epsilon(u, r)
  want = [_reference_eps(u[:, i], r[:, i]) for i in range(4)]
  np.testing.assert_allclose(got, want, **FLOAT32)


def test_401_right_ends_put_one_on_the_peaky_maximum():
  # peaky (unlearned) = {7.7, 7.73, 7.77, 7.8}: max_ - min_ = (7.8 + 2) - ((7.7 + w) - 2) rounds
  # above 4, so the official grid has ceil(100 * 4.000...01) = 401 right ends, step 0.01 (not
  # 400, step 4/399), one of them on peaky.max. [7.695, that end] holds the peaky sample and no
  # retrained confidence (7.69 and 7.803 are out): perfect separation, ε = 50, the official
  # scorer's value. A 400-right-end grid has no right end in [7.8, 7.803): ε = log(3 - 4δ).
  u, r = _column([7.7, 7.73, 7.77, 7.8]), _column([7.69, 7.803, 6.0, 9.0])
  w = 7.8 - 7.7
  right = np.linspace(7.7 + w - 2, 7.8 + 2, math.ceil((7.8 + 2 - (7.7 + w - 2)) * 100))
  assert right.size == 401 and 7.8 <= right[200] < 7.803
  assert fq._double_threshold_grid(7.7, 7.8, w)[0].tolist() == right.tolist()
  assert metrics.per_example_epsilon(u, r)[0] == 50.0 == _reference_eps(u[:, 0], r[:, 0])


def test_left_ends_rounded_just_above_the_peaky_minimum():
  # For every right end r the official left ends linspace(r - w - 2, r - w + 2, 400) have one on
  # peaky.min in exact arithmetic; rounding leaves it just above peaky.min for some r, and those
  # rules exclude exactly peaky.min. u is the peaky sample (spread 0.0056, 1.6 % of r's: not
  # collapsed). (peaky.min, r] with r >= 5.86692 holds two of u and one of r: FNR = FPR = 1/3,
  # ε = log(2 - 3δ), the official scorer's value; no other rule certifies anything (ε was 0
  # with a grid that always put a left end exactly on peaky.min).
  u = _column([5.860926711316215, 5.866486421035192, 5.862687705735813])
  r = _column([6.214031314650621, 6.177144505588261, 5.866917108835151])
  pmin, pmax, w = u.min(), u.max(), np.ptp(u)
  right = np.linspace(pmin + w - 2, pmax + 2, math.ceil((pmax + 2 - (pmin + w - 2)) * 100))
  assert right.size == 400
  just_above = [t for t in right if 0 < np.linspace(t - w - 2, t - w + 2, 400)[399 - 200] - pmin]
  assert just_above  # (the left end meant to be peaky.min, for right end 200)
  eps = metrics.per_example_epsilon(u, r)[0]
  assert eps == pytest.approx(math.log(2 - 3 * DELTA), rel=1e-12)
  assert eps == pytest.approx(_reference_eps(u[:, 0], r[:, 0]), rel=2e-6)


def test_confidences_on_grid_points_and_one_ulp_off():
  # Ties at their worst: the other sample sits on official left and right ends, and one float64
  # step beside them; ε still equals the literal reference, and all three counting paths agree.
  rng = np.random.default_rng(21)
  for trial in range(6):
    m = 8
    peaky = np.sort(rng.normal(rng.normal(0, 5), 0.5, m))
    pmin, pmax, w = peaky[0], peaky[-1], peaky[-1] - peaky[0]
    right = np.linspace(pmin + w - 2, pmax + 2, math.ceil((pmax + 2 - (pmin + w - 2)) * 100))
    rows = rng.integers(0, right.size, m)
    left = [np.linspace(right[i] - w - 2, right[i] - w + 2, 400)[rng.integers(400)] for i in rows]
    other = np.where(np.arange(m) % 2, left, right[rng.integers(0, right.size, m)])
    other = np.nextafter(other, other + rng.choice([-1.0, 0.0, 1.0], m))
    other[0] = pmin  # and a shared minimum.
    other = np.sort(other)
    u, r = peaky[:, None], other[:, None]
    _assert_matches_reference(u, r, f"trial {trial}")
    table = fq._epsilon_table(m, m, DELTA)
    grid_r, lo, hi, step = fq._double_threshold_grid(pmin, pmax, w)
    grid = (grid_r, lo, hi, step, fq._packed_counts(peaky, other, grid_r, "right"))
    tol = 2.0**-30 * (max(abs(pmin), abs(pmax)) + 5)
    values = {
      fq._rows_max(peaky, other, table, grid, tol),
      fq._exhaustive_max(peaky, other, table, grid),
    }
    if grid_r.size == 400:
      values.add(fq._lattice_max(peaky, other, table, grid, tol))
    assert len(values) == 1, (trial, values)


def test_counting_paths_agree_on_random_cases():
  # The lattice (400 right ends), row (any number) and exhaustive paths count the same rules.
  rng = np.random.default_rng(22)
  u, r = _random_cases(rng, 32, 40)
  table = fq._epsilon_table(32, 32, DELTA)
  for i in range(u.shape[1]):
    a, b = np.sort(u[:, i]), np.sort(r[:, i])
    peaky, other = (a, b) if np.ptp(a) < np.ptp(b) else (b, a)
    right, lo, hi, step = fq._double_threshold_grid(peaky[0], peaky[-1], np.ptp(peaky))
    grid = (right, lo, hi, step, fq._packed_counts(peaky, other, right, "right"))
    tol = 2.0**-30 * (max(abs(peaky[0]), abs(peaky[-1])) + 5)
    want = fq._exhaustive_max(peaky, other, table, grid)
    assert fq._rows_max(peaky, other, table, grid, tol) == want, i
    if right.size == 400:
      assert fq._lattice_max(peaky, other, table, grid, tol) == want, i


def test_collapse_rule_is_the_official_ratio():
  # smallest / largest < 0.01, as the official code writes it: here 0.0038036... / 0.38036... is
  # not below 0.01 although 0.0038036... < 0.01 * 0.38036... is true in float64.
  small, large = 0.0038036474434008337, 0.3803647443400834
  assert not small / large < 0.01 and small < 0.01 * large
  u, r = _column([0.0, large]), _column([0.0, small])
  eps = metrics.per_example_epsilon(u, r)[0]
  assert eps != 50.0 and eps == pytest.approx(_reference_eps(u[:, 0], r[:, 0]), abs=2e-6)


# (start, end, steps, sha256 of the float32 bytes, first 16 hex digits) of torch.linspace on two
# float64 tensors, recorded with torch 2.2.0 on an AVX-512 CPU (the AVX2 build gives the same).
TORCH_LINSPACE = [
  (6.017213, 12.634312, 662, "b470fdf74dbfe0f4"),
  (-13.594624, -0.302834, 1330, "e1191e3f4f7d45b8"),
  (-7.758675, 8.629058, 1639, "d5ed3c21f91eda8f"),
  (-1.986283, 15.562831, 1755, "33d7c1735916148f"),
  (-6.292893, -1.764446, 453, "9eada84568095b65"),
  (0.501862, 26.044206, 2555, "c014f801eef02f50"),
  (1.321381, 19.724631, 1841, "e187199ee5139d2a"),
  (4.04102, 29.830034, 2579, "1ce7ba5c9717c46b"),
  (-7.418026, 5.761464, 1318, "73088e5aab095a47"),
  (-6.89324, 21.409519, 2831, "cdf2b1bcca862f33"),
  (-103.6, 103.6, 20720, "42d071671b614bf8"),
  (3250000.0, 3250009.5, 950, "3041847b027abd41"),
  (-7300000.0, -7299997.0, 300, "6ed47dc62590390e"),
  (1.0, 1.004, 1, "e00e5eb9444182f3"),
  (0.1, 0.30000000000000004, 21, "0e205d3bacb3451b"),
]


def test_single_threshold_grid_equals_recorded_torch_linspace():
  for start, end, steps, digest in TORCH_LINSPACE:
    grids = [fq._torch_linspace_float32(start, end, steps)]
    if steps <= 3000:  # (the exact-fraction reference is slow)
      grids.append(_ref_torch_linspace(start, end, steps))
    for values in grids:
      assert values.size == steps
      assert hashlib.sha256(values.astype("<f4").tobytes()).hexdigest()[:16] == digest, (start, end)


@pytest.mark.parametrize("m", [3, 4, 5, 8, 16, 36, 64, 100, 128, 264, 500, 512])
def test_float64_epsilon_buckets_equal_the_official_float32_ones(m):
  # Our ε of every count pair is float64; the official one float32 (float32 rates, `1 - δ - FPR`
  # and logs). They differ by float32 rounding only, never by a score bucket (checked for every M
  # from 3 to 512; M = 264 comes closest, an ε 3.4e-6 from a bucket edge).
  ours = fq._epsilon_table(m, m, DELTA).reshape(m + 1, m + 1)
  a, b = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")  # positives predicted.
  f32 = np.float32
  tpr, fnr = a.astype(f32) / f32(m), (m - a).astype(f32) / f32(m)
  fpr, tnr = b.astype(f32) / f32(m), (m - b).astype(f32) / f32(m)
  official = _ref_rule_epsilons(tpr, fnr, fpr, tnr).astype(np.float64)
  finite = np.isfinite(official)
  np.testing.assert_allclose(ours[finite], official[finite], **FLOAT32)
  buckets = metrics.num_score_bins(m)
  ob = np.minimum(np.floor(official[finite] / 0.5), buckets)
  wb = np.minimum(np.floor(ours[finite] / 0.5), buckets)
  np.testing.assert_array_equal(ob, wb)
  assert np.all(np.isinf(ours[np.isinf(official)]))  # perfect separation.
  # Discarded officially: exactly one zero rate (ours -inf), or FPR = FNR = 1, where neither term
  # is defined (ours 0; it cannot raise a max over rules, which is >= 0).
  discarded = np.isnan(official)
  assert np.all(np.where((a == 0) & (b == m), ours == 0, ours == -np.inf)[discarded])


# ---------------------------------------------------------------------------------------------
# Hand-computed cases (M = 4).


def test_hand_computed_epsilon_m4():
  # unlearned u = {0, 1, 2, 3}, retrained r = {2.5, 3.5, 4.5, 5.5}; both spreads are 3 (no
  # collapse). median(r) = 4 > median(u) = 1.5, so r is "positive" for the single threshold.
  #   c >= t with t in (2.5, 3]: r: 3.5, 4.5, 5.5 in -> FNR = 1/4; u: 3 in -> FPR = 1/4.
  #     eps = max(log(1 - d - 1/4) - log(1/4), same) = log((0.75 - d) / 0.25) = log(2.99996).
  #   every other single threshold has FPR = 0 or FNR = 0 with the other nonzero: discarded.
  # Double threshold: equal spreads -> the smaller-median sample u is the peaky positive. An
  # interval holding all of u holds 2.5 too (FNR = 0, FPR > 0: discarded); the best kept rule is
  # [1, 3]: FNR = 1/4 (0 out), FPR = 1/4 (2.5 in) -> the same log(2.99996). No rule is perfect.
  eps = metrics.per_example_epsilon(_column([0, 1, 2, 3]), _column([2.5, 3.5, 4.5, 5.5]))
  assert eps[0] == pytest.approx(math.log((0.75 - DELTA) / 0.25), rel=1e-12)  # 1.098599...
  # Bins for M = 4: ceil(ln 3) = 2 -> 4 half-unit bins; 1.0986 is in [1, 1.5): 1/4 point.
  assert metrics.forget_score(eps, 4) == 0.25


def test_rules_with_exactly_one_zero_rate_are_discarded():
  # u = {0, 1, 2, 3}, r = {2.5, 4, 5, 6}. The threshold t = 3.5 has FPR = 0 (no u >= 3.5) and
  # FNR = 1/4 (2.5 < 3.5): kept, its second term log(1 - d - 1/4) - log(0) would be +inf. It is
  # discarded, so eps comes from the (FPR, FNR) = (1/4, 1/4) rules: log((0.75 - d) / 0.25).
  eps = metrics.per_example_epsilon(_column([0, 1, 2, 3]), _column([2.5, 4, 5, 6]))
  assert eps[0] == pytest.approx(math.log((0.75 - DELTA) / 0.25), rel=1e-12)


def test_perfect_separation_gives_the_cap():
  # A threshold between 3 and 10 has FPR = FNR = 0: eps = inf, capped at 50.
  eps = metrics.per_example_epsilon(_column([0, 1, 2, 3]), _column([10, 11, 12, 13]))
  assert eps[0] == 50.0
  # Also when only the double-threshold family can separate: r sits inside u's range.
  eps = metrics.per_example_epsilon(_column([0, 1, 9, 10]), _column([4.9, 5.0, 5.1, 5.3]))
  assert eps[0] == 50.0


def test_collapsed_sample_gives_the_cap():
  # r's spread 0.009 is below 1% of u's spread 1, even though r sits in the middle of u.
  u = _column([0.0, 0.3, 0.5, 1.0])
  assert metrics.per_example_epsilon(u, _column([0.5, 0.502, 0.505, 0.509]))[0] == 50.0
  assert metrics.per_example_epsilon(_column([0.5, 0.502, 0.505, 0.509]), u)[0] == 50.0
  # At 2% it is not collapsed. r = {.49, .5, .505, .51} straddles u's 0.5, so no rule is perfect.
  # Single threshold t in (.49, .5]: FNR = 1/4 (.49 out), FPR = 2/4 (.5, 1 in):
  #   eps = log(1 - d - 1/2) - log(1/4) = log(2 - 4d) = 0.6931.
  # (The interval [.5, .51] would reach FPR = FNR = 1/4, but the left ends are 4/399 > 0.01
  # apart, so none lies in (.49, .5].)
  r = _column([0.49, 0.50, 0.505, 0.51])
  not_collapsed = metrics.per_example_epsilon(u, r)[0]
  assert not_collapsed == pytest.approx(math.log((0.5 - DELTA) / 0.25), rel=1e-12)
  assert not_collapsed == pytest.approx(_reference_eps(u[:, 0], r[:, 0]), rel=2e-6)


def test_identical_constant_samples_have_no_surviving_rule():
  # Every rule puts all or none of both samples inside: FPR = 1 - FNR in {0, 1}; nothing is kept.
  assert metrics.per_example_epsilon(np.ones((4, 1)), np.ones((4, 1)))[0] == 0.0


# ---------------------------------------------------------------------------------------------
# Scoring.


def test_forget_score_buckets_by_hand():
  # M = 32: ceil(ln 31) = ceil(3.43) = 4: 8 bins [0, .5), ..., [3.5, 4) worth 1, 1/2, ..., 1/128.
  eps = [0.0, 0.49, 0.5, 1.2, 3.9, 4.0, 50.0]
  expected = (1 + 1 + 0.5 + 0.25 + 2.0**-7 + 0 + 0) / 7
  assert metrics.forget_score(eps, 32) == pytest.approx(expected)
  assert metrics.num_score_bins(32) == 8
  assert metrics.num_score_bins(512) == 14  # ceil(ln 511) = ceil(6.24) = 7.
  assert metrics.num_score_bins(3) == 2  # ceil(ln 2) = 1.
  assert metrics.forget_score([0.0], 2) == 0.0  # ln 1 = 0: no bin earns points.
  with pytest.raises(ValueError):
    metrics.forget_score([-0.1], 32)


def _gaussian_family(rng, num_models, num_examples, shift=0.0, centres=None):
  """Confidences [M, n]: example i ~ N(centres_i + shift, 1) across models."""
  if centres is None:
    centres = rng.normal(0, 3, num_examples)  # each example has its own typical confidence.
  return centres + shift + rng.normal(0, 1, (num_models, num_examples))


@pytest.mark.parametrize("num_models", [16, 64])
def test_identical_distributions_score_far_above_separated_ones(num_models):
  rng = np.random.default_rng(num_models)
  centres = rng.normal(0, 3, 60)
  retrained = _gaussian_family(rng, num_models, 60, centres=centres)
  unlearned = _gaussian_family(rng, num_models, 60, centres=centres)  # same law, other seeds.
  separated = retrained + 40.0
  accs = dict(
    retain_acc_unlearned=1.0,
    retain_acc_retrained=1.0,
    test_acc_unlearned=1.0,
    test_acc_retrained=1.0,
  )
  same = metrics.forgetting_quality(unlearned, retrained, **accs)
  apart = metrics.forgetting_quality(separated, retrained, **accs)
  np.testing.assert_array_equal(apart["eps"], 50.0)
  assert apart["score"] == 0.0
  # Sampling noise in the tails: about 0.1-0.2 at these M, not 1 (50-metrics.md §3.5).
  assert 0.08 < same["score"] < 0.3
  ceiling = metrics.oracle_ceiling(np.concatenate([retrained, unlearned]), seed=0)
  assert ceiling["score"] > 0.05 > apart["score"]
  a, b = ceiling["split"]
  assert len(a) == len(b) == num_models and not set(a) & set(b)


def test_oracle_ceiling_with_a_given_split():
  rng = np.random.default_rng(7)
  r = _gaussian_family(rng, 8, 25)
  c = metrics.oracle_ceiling(r, split=([4, 5, 6], [0, 1, 2]))
  direct = metrics.forgetting_quality(
    r[[4, 5, 6]],
    r[[0, 1, 2]],
    retain_acc_unlearned=1.0,
    retain_acc_retrained=1.0,
    test_acc_unlearned=1.0,
    test_acc_retrained=1.0,
  )
  np.testing.assert_array_equal(c["eps"], direct["eps"])
  assert c["score"] == direct["score"] and c["num_models"] == 3
  for bad in (
    ([0, 1], [1, 2]),
    ([0, 1, 2], [3, 4]),
    ([0], [1]),
    ([0, 1], [2, 8]),
    ([0, 0], [1, 2]),
    ([-1, 0], [1, 2]),
  ):
    with pytest.raises(ValueError, match="split must be two disjoint groups"):
      metrics.oracle_ceiling(r, split=bad)


def test_score_is_invariant_to_permuting_models_and_examples():
  rng = np.random.default_rng(5)
  u = _gaussian_family(rng, 12, 20, shift=0.7)
  r = _gaussian_family(rng, 12, 20)
  eps = metrics.per_example_epsilon(u, r)
  pu, pr, pe = rng.permutation(12), rng.permutation(12), rng.permutation(20)
  np.testing.assert_array_equal(metrics.per_example_epsilon(u[pu][:, pe], r[pr][:, pe]), eps[pe])
  assert metrics.forget_score(eps[pe], 12) == metrics.forget_score(eps, 12)


def test_final_score_multiplies_by_accuracy_ratios():
  rng = np.random.default_rng(6)
  u = _gaussian_family(rng, 8, 10, shift=0.3)
  r = _gaussian_family(rng, 8, 10)
  out = metrics.forgetting_quality(
    u,
    r,
    retain_acc_unlearned=[0.90, 0.94],  # mean 0.92
    retain_acc_retrained=0.96,
    test_acc_unlearned=0.80,
    test_acc_retrained=[0.84, 0.86],  # mean 0.85
  )
  assert out["forget_score"] == metrics.forget_score(metrics.per_example_epsilon(u, r), 8)
  assert out["score"] == pytest.approx(out["forget_score"] * (0.92 / 0.96) * (0.80 / 0.85))
  assert out["eps"].shape == (10,)
  with pytest.raises(ValueError):
    metrics.forgetting_quality(
      u,
      r,
      retain_acc_unlearned=0.9,
      retain_acc_retrained=0.0,
      test_acc_unlearned=0.8,
      test_acc_retrained=0.8,
    )


# ---------------------------------------------------------------------------------------------
# Confidences and validation.


def test_logit_scaled_confidence_matches_direct_formula():
  rng = np.random.default_rng(7)
  logits = rng.normal(size=(3, 5, 4)) * 2  # [M, n, C]
  labels = rng.integers(0, 4, size=5)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  p_true = np.take_along_axis(probs, np.broadcast_to(labels, (3, 5))[..., None], -1)[..., 0]
  expected = np.log(p_true) - np.log(1 - p_true)
  np.testing.assert_allclose(metrics.logit_scaled_confidence(logits, labels), expected, rtol=1e-9)
  # Stable where p_y rounds to 1: z_y - logsumexp(others) = 1000 - log 2.
  conf = metrics.logit_scaled_confidence(np.array([[1000.0, 0.0, 0.0]]), np.array([0]))
  assert conf[0] == pytest.approx(1000 - math.log(2))


@pytest.mark.parametrize(
  "u, r",
  [
    (np.ones((1, 3)), np.ones((4, 3))),  # one model.
    (np.ones((4, 3)), np.ones((4, 2))),  # different numbers of examples.
    (np.ones((4, 0)), np.ones((4, 0))),  # no examples.
    (np.ones(4), np.ones(4)),  # not [M, n].
    (np.full((4, 3), np.nan), np.ones((4, 3))),
  ],
)
def test_per_example_epsilon_rejects_bad_inputs(u, r):
  with pytest.raises(ValueError):
    metrics.per_example_epsilon(u, r)


def test_chunking_does_not_change_the_result():
  rng = np.random.default_rng(8)
  u = _gaussian_family(rng, 6, 9, shift=0.5)
  r = _gaussian_family(rng, 6, 9)
  np.testing.assert_array_equal(
    metrics.per_example_epsilon(u, r, chunk_size=2),
    metrics.per_example_epsilon(u, r, chunk_size=100),
  )
