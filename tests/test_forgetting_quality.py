"""Forgetting quality (NeurIPS 2023 unlearning challenge) against hand computations and a slow
reference that compares every model with every threshold, as the official code does."""

import math

import numpy as np
import pytest

from unlearn_jax import metrics

DELTA = 1e-5


def _column(values):
  """[M] values of one example -> [M, 1] confidences."""
  return np.asarray(values, dtype=float)[:, None]


# ---------------------------------------------------------------------------------------------
# Slow reference: the official algorithm written out with direct comparisons (M x thresholds).


def _rule_eps(fpr, fnr):
  """ε of each rule; NaN marks a discarded rule."""
  out = np.full(fpr.shape, np.nan)
  out[(fpr == 0) & (fnr == 0)] = np.inf
  kept = (fpr > 0) & (fnr > 0)
  with np.errstate(all="ignore"):
    e = np.fmax(np.log(1 - DELTA - fpr) - np.log(fnr), np.log(1 - DELTA - fnr) - np.log(fpr))
  e = np.where(np.isnan(e), 0.0, np.maximum(e, 0.0))
  out[kept] = e[kept]
  return out


def _reference_eps(u, r):
  spread_u, spread_r = np.ptp(u), np.ptp(r)
  if min(spread_u, spread_r) < 0.01 * max(spread_u, spread_r):
    return 50.0
  pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
  lo, hi = min(u.min(), r.min()), max(u.max(), r.max())
  t = np.linspace(lo, hi, math.ceil((hi - lo) * 100))
  single = _rule_eps(fpr=(neg[:, None] >= t).mean(0), fnr=(pos[:, None] < t).mean(0))
  peaky, other = (neg, pos) if np.ptp(pos) >= np.ptp(neg) else (pos, neg)
  w = np.ptp(peaky)
  lo, hi = peaky.min() + w - 2, peaky.max() + 2
  right = np.linspace(lo, hi, math.ceil((hi - lo) * 100))
  left = np.stack([np.linspace(x - w - 2, x - w + 2, 400) for x in right])

  def frac_inside(c):
    c = c[:, None, None]
    return ((left <= c) & (c <= right[:, None])).mean(0)

  double = _rule_eps(fpr=frac_inside(other), fnr=1 - frac_inside(peaky))
  everything = np.concatenate([single, double.ravel()])
  best = np.nanmax(everything) if np.any(~np.isnan(everything)) else 0.0
  return min(best, 50.0)


def test_matches_slow_reference_on_random_small_cases():
  rng = np.random.default_rng(0)
  for trial in range(12):
    m = int(rng.integers(2, 9))
    u = rng.normal(0, rng.uniform(0.3, 2), (m, 3))
    r = rng.normal(rng.uniform(-2, 2), rng.uniform(0.3, 2), (m, 3))
    if trial % 3 == 0:  # coarse values: many ties between confidences and thresholds.
      u, r = np.round(u, 1), np.round(r, 1)
    got = metrics.per_example_epsilon(u, r)
    want = [_reference_eps(u[:, i], r[:, i]) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"trial {trial}")


def test_matches_slow_reference_with_different_numbers_of_models():
  rng = np.random.default_rng(1)
  u = rng.normal(0, 1, (5, 3))
  r = rng.normal(0.5, 1, (8, 3))
  want = [_reference_eps(u[:, i], r[:, i]) for i in range(3)]
  np.testing.assert_allclose(metrics.per_example_epsilon(u, r), want, rtol=1e-12)


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
  assert not_collapsed == pytest.approx(_reference_eps(u[:, 0], r[:, 0]), rel=1e-12)


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
