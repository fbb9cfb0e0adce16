"""Shadow-model metrics (memorisation, LiRA/U-LiRA, KLOM) against independent references.

References are written here from the definitions (Python loops, scipy, sklearn, np.histogram),
never by calling the module's own helpers; the U-LiRA controls use synthetic Gaussian statistics
whose truth is known.
"""

import math
import sys
import time

import numpy as np
import pytest
import scipy.special
import scipy.stats
from sklearn.metrics import roc_auc_score, roc_curve

from unlearn_jax import metrics
from unlearn_jax.metrics import forgetting_quality  # noqa: F401  (registers the submodules)

# ``from unlearn_jax.metrics import klom`` gives the function (it shadows its module).
klom_mod = sys.modules["unlearn_jax.metrics.klom"]
lira_mod = sys.modules["unlearn_jax.metrics.lira"]
fq_mod = sys.modules["unlearn_jax.metrics.forgetting_quality"]


# ----------------------------------------------------------------------------------------------
# Memorisation.


def test_feldman_zhang_matches_a_loop():
  rng = np.random.default_rng(0)
  K, n = 40, 30
  keep = rng.random((K, n)) < 0.5
  correct = rng.random((K, n)) < np.where(keep, 0.9, 0.4)
  keep[:, 0] = True  # no out model: NaN
  keep[:, 1] = False  # no in model: NaN
  res = metrics.feldman_zhang(correct, keep)
  for j in range(n):
    ins = [float(correct[k, j]) for k in range(K) if keep[k, j]]
    outs = [float(correct[k, j]) for k in range(K) if not keep[k, j]]
    assert res["n_in"][j] == len(ins) and res["n_out"][j] == len(outs)
    if ins and outs:
      assert res["score"][j] == pytest.approx(sum(ins) / len(ins) - sum(outs) / len(outs))
    else:
      assert math.isnan(res["score"][j])
  assert np.isnan(res["stderr"][:2]).all()


def test_feldman_zhang_stderr_by_hand():
  # One example: in-models correct [1, 1, 0], out-models correct [0, 1].
  correct = np.array([[1], [1], [0], [0], [1]])
  keep = np.array([[True], [True], [True], [False], [False]])
  res = metrics.feldman_zhang(correct, keep)
  # means 2/3 and 1/2; sample variances 1/3 and 1/2.
  assert res["score"][0] == pytest.approx(2 / 3 - 1 / 2)
  assert res["stderr"][0] == pytest.approx(math.sqrt((1 / 3) / 3 + (1 / 2) / 2))
  # A single out model: the score exists, its standard error does not.
  one_out = metrics.feldman_zhang(correct[:4], keep[:4])
  assert one_out["score"][0] == pytest.approx(2 / 3) and math.isnan(one_out["stderr"][0])


def test_feldman_zhang_rejects_bad_inputs():
  with pytest.raises(ValueError):
    metrics.feldman_zhang(np.ones((3, 4)), np.ones((3, 5), bool))
  with pytest.raises(ValueError):
    metrics.feldman_zhang(np.full((3, 4), 2.0), np.ones((3, 4), bool))


def test_confidence_proxy_matches_a_loop():
  rng = np.random.default_rng(1)
  K, E, n, C = 3, 4, 6, 5
  probs = rng.dirichlet(np.ones(C), size=(K, E, n))
  labels = rng.integers(0, C, n)
  keep = rng.random((K, n)) < 0.6
  keep[:, 0] = False
  one = metrics.confidence_proxy(probs[0], labels)
  every = metrics.confidence_proxy(probs, labels)
  kept = metrics.confidence_proxy(probs, labels, keep=keep)
  for j in range(n):
    per_model = [np.mean([probs[k, e, j, labels[j]] for e in range(E)]) for k in range(K)]
    assert one[j] == pytest.approx(per_model[0])
    assert every[j] == pytest.approx(np.mean(per_model))
    chosen = [per_model[k] for k in range(K) if keep[k, j]]
    if chosen:
      assert kept[j] == pytest.approx(np.mean(chosen))
    else:
      assert math.isnan(kept[j])
  with pytest.raises(ValueError):
    metrics.confidence_proxy(probs[0], labels, keep=keep)


def test_spearman_matches_scipy_with_ties_and_nan():
  rng = np.random.default_rng(2)
  a = rng.integers(0, 6, 200).astype(float)  # many ties
  b = a + rng.integers(0, 4, 200)
  a[[3, 10]] = np.nan
  b[[10, 50]] = np.nan
  ok = ~(np.isnan(a) | np.isnan(b))
  ref = scipy.stats.spearmanr(a[ok], b[ok]).statistic
  assert metrics.spearman(a, b) == pytest.approx(ref, abs=1e-12)
  x = rng.normal(size=50)
  assert metrics.spearman(x, -(x**3)) == pytest.approx(-1.0)
  assert math.isnan(metrics.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
  assert math.isnan(metrics.spearman([1.0, np.nan], [2.0, 3.0]))


# ----------------------------------------------------------------------------------------------
# Logit-scaled confidence / margins.


def test_phi_matches_a_naive_softmax_formula():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(4, 7, 5)) * 3
  labels = rng.integers(0, 5, 7)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  p_y = np.take_along_axis(probs, np.broadcast_to(labels[:, None], (4, 7, 1)), -1)[..., 0]
  naive = np.log(p_y) - np.log(1 - p_y)
  np.testing.assert_allclose(lira_mod.logit_scaled_confidence(logits, labels), naive, rtol=1e-9)
  np.testing.assert_allclose(metrics.margins(logits, labels), naive, rtol=1e-9)
  # One definition, shared.
  assert lira_mod.logit_scaled_confidence is fq_mod.logit_scaled_confidence
  assert "logit_scaled_confidence" not in lira_mod.__all__


# ----------------------------------------------------------------------------------------------
# LiRA.


def _shadow_bank(rng, S=24, n=40, T=3, shift=1.5):
  base = rng.normal(0, 2, n)
  shadow_in = rng.random((S, n)) < 0.5
  shadow = base + shift * shadow_in + rng.normal(0, 1, (S, n)) * rng.uniform(0.5, 2, n)
  target_in = rng.random((T, n)) < 0.5
  target = base + shift * target_in + rng.normal(0, 1, (T, n))
  return shadow, shadow_in, target, target_in


def test_lira_online_matches_scipy_logpdf():
  rng = np.random.default_rng(4)
  shadow, shadow_in, target, _ = _shadow_bank(rng)
  shadow_in[:, 0] = False  # no in shadows: NaN
  shadow_in[:, 1] = False
  shadow_in[0, 1] = True  # one in shadow (< min_shadows = 2): NaN
  for center, fn in (("median", np.median), ("mean", np.mean)):
    got = metrics.lira_scores(target, shadow, shadow_in, center=center)
    for j in range(shadow.shape[1]):
      ins, outs = shadow[shadow_in[:, j], j], shadow[~shadow_in[:, j], j]
      for t in range(target.shape[0]):
        if len(ins) < 2:
          assert math.isnan(got[t, j])
          continue
        ref = scipy.stats.norm.logpdf(target[t, j], fn(ins), np.std(ins)) - scipy.stats.norm.logpdf(
          target[t, j], fn(outs), np.std(outs)
        )
        assert got[t, j] == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_lira_offline_and_fixed_variance_by_hand():
  rng = np.random.default_rng(5)
  shadow, shadow_in, target, _ = _shadow_bank(rng)
  n = shadow.shape[1]
  offline = metrics.lira_scores(target, shadow, shadow_in, online=False)
  for j in range(n):
    outs = shadow[~shadow_in[:, j], j]
    np.testing.assert_allclose(offline[:, j], (target[:, j] - np.median(outs)) / np.std(outs))
  # Offline: the paper's one-sided Pr[Z < φ] ranks the same way (AUC equal).
  member = rng.random(target.shape) < 0.5
  one_sided = scipy.stats.norm.cdf(offline)
  assert roc_auc_score(member.ravel(), offline.ravel()) == pytest.approx(
    roc_auc_score(member.ravel(), one_sided.ravel())
  )

  # Pooled within-example σ per side, mean centre.
  def pooled(side):
    sq = sum(((shadow[side[:, j], j] - shadow[side[:, j], j].mean()) ** 2).sum() for j in range(n))
    return math.sqrt(sq / side.sum())

  s_in, s_out = pooled(shadow_in), pooled(~shadow_in)
  got = metrics.lira_scores(target, shadow, shadow_in, fix_variance=True, center="mean")
  for j in range(n):
    mu_in, mu_out = shadow[shadow_in[:, j], j].mean(), shadow[~shadow_in[:, j], j].mean()
    ref = scipy.stats.norm.logpdf(target[:, j], mu_in, s_in) - scipy.stats.norm.logpdf(
      target[:, j], mu_out, s_out
    )
    np.testing.assert_allclose(got[:, j], ref, rtol=1e-9)
  # "global": np.std of all of a side's values (tensorflow/privacy generate_ours).
  got = metrics.lira_scores(target[0], shadow, shadow_in, fix_variance="global")
  j = 7
  ins, outs = shadow[shadow_in[:, j], j], shadow[~shadow_in[:, j], j]
  ref = scipy.stats.norm.logpdf(target[0, j], np.median(ins), shadow[shadow_in].std())
  ref -= scipy.stats.norm.logpdf(target[0, j], np.median(outs), shadow[~shadow_in].std())
  assert got[j] == pytest.approx(ref)


def test_lira_sigma_floor_and_bad_options():
  shadow = np.zeros((4, 1))
  shadow_in = np.array([[True], [True], [False], [False]])
  shadow[:2] = 1.0  # both sides constant: σ = 0 -> floor
  score = metrics.lira_scores(np.array([1.0]), shadow, shadow_in)
  assert np.isfinite(score).all() and score[0] > 1e6
  with pytest.raises(ValueError):
    metrics.lira_scores(np.zeros(1), shadow, shadow_in, center="mode")
  with pytest.raises(ValueError):
    metrics.lira_scores(np.zeros(1), shadow, shadow_in, fix_variance="yes")


def test_attack_summary_matches_sklearn():
  rng = np.random.default_rng(6)
  T, n = 3, 3000
  member = rng.random((T, n)) < 0.4
  scores = np.round(rng.normal(size=(T, n)) + 1.2 * member, 1)  # rounding makes ties
  scores[0, :5] = np.nan
  res = metrics.attack_summary(scores, member)
  for t in range(T):
    ok = ~np.isnan(scores[t])
    s, y = scores[t, ok], member[t, ok]
    assert res["auc"][t] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    for f, got in zip((0.01, 0.001), res["tpr_at_fpr"][t]):
      assert got == pytest.approx(tpr[fpr <= f].max())
    assert res["balanced_accuracy"][t] == pytest.approx(np.max(1 - (fpr + (1 - tpr)) / 2))
    assert res["accuracy"][t] == pytest.approx(np.mean((s > 0) == y))
    assert res["n_members"][t] == y.sum() and res["n_nonmembers"][t] == (~y).sum()
  one = metrics.attack_summary(scores[1], member[1])
  assert one["auc"] == res["auc"][1] and one["tpr_at_fpr"].shape == (2,)
  empty = metrics.attack_summary(np.ones(4), np.ones(4, bool))
  assert math.isnan(empty["auc"]) and math.isnan(empty["accuracy"])


def test_lira_end_to_end_separates_members():
  rng = np.random.default_rng(7)
  shadow, shadow_in, target, target_in = _shadow_bank(rng, S=64, n=500, T=2, shift=3.0)
  res = metrics.attack_summary(metrics.lira_scores(target, shadow, shadow_in), target_in)
  assert (res["auc"] > 0.9).all() and (res["accuracy"] > 0.8).all()


# ----------------------------------------------------------------------------------------------
# U-LiRA.


def _ulira_world(seed, *, forgets, M=128, S=128, n=400, F=100, shift=4.0):
  """Synthetic stats: φ = base_x + shift·(x trained and still remembered) + N(0, 1).

  ``forgets=True``: forgotten examples look never seen (exact unlearning, e.g. retraining);
  ``False``: they look trained on (nothing unlearned).
  """
  rng = np.random.default_rng(seed)
  base = rng.normal(0, 3, n)
  trained = rng.random((M, n)) < 0.5
  forgotten = np.zeros((M, n), bool)
  for m in range(M):
    forgotten[m, rng.choice(np.flatnonzero(trained[m]), F, replace=False)] = True
  remembered = trained & ~forgotten if forgets else trained
  unlearned = base + shift * remembered + rng.normal(0, 1, (M, n))
  out_trained = rng.random((S, n)) < 0.5
  out = base + shift * out_trained + rng.normal(0, 1, (S, n))
  return unlearned, trained, forgotten, out, ~out_trained


def test_ulira_exact_unlearning_control_is_chance():
  # Under exact unlearning a target's φ has the same law for members and non-members, so any
  # rule is right with probability exactly 1/2 on balanced sets. 16 targets x ~200 balanced
  # examples = ~3,200 predictions: SE ~ 0.009 if independent (predictions of one example for two
  # targets share the fitted Gaussians but not the target's draw). Over 10 such synthetic worlds
  # the mean accuracy had SD 0.009 and the mean AUC 0.011, so 0.05 is about 5 SD.
  world = _ulira_world(0, forgets=True)
  res = metrics.ulira(*world, targets=range(16), seed=0)
  assert abs(res["accuracy_mean"] - 0.5) < 0.05
  assert abs(res["auc_mean"] - 0.5) < 0.05
  assert (res["n_members"] == res["n_nonmembers"]).all() and (res["n_members"] > 80).all()
  assert res["accuracy"].shape == (16,) and res["tpr_at_fpr"].shape == (16, 2)


def test_ulira_nothing_forgotten_is_caught():
  # In-distribution N(base + 4, 1), out N(base, 1): the Bayes accuracy is Φ(2) = 0.977.
  world = _ulira_world(1, forgets=False)
  res = metrics.ulira(*world, targets=range(16), seed=0)
  assert res["accuracy_mean"] >= 0.9 and res["auc_mean"] >= 0.95
  assert res["accuracy_std"] < 0.05
  vuln = metrics.ulira_per_example(res, world[0].shape[1])
  scored = vuln["times_scored"] > 0
  assert np.nanmean(vuln["correct"][scored]) >= 0.9
  assert np.isnan(vuln["correct"][~scored]).all()


def _ulira_reference_p(u, trained, forgotten, out, out_mask, t, x, cap, left_out):
  """p of target t on example x, from the definition (loops, scipy.stats.norm)."""
  ins = [u[m, x] for m in range(u.shape[0]) if forgotten[m, x] and m not in left_out]
  outs = [out[s, x] for s in range(out.shape[0]) if out_mask[s, x]]
  if cap is not None:  # both sides keep their first min(#in, #out, cap) models
    k = min(len(ins), len(outs), cap)
    ins, outs = ins[:k], outs[:k]
  ins, outs = np.array(ins), np.array(outs)
  # N_in / (N_in + N_out) in log space (the densities underflow far in the tails).
  log_in = scipy.stats.norm.logpdf(u[t, x], ins.mean(), ins.std())
  log_out = scipy.stats.norm.logpdf(u[t, x], outs.mean(), outs.std())
  return scipy.special.expit(log_in - log_out)


def test_ulira_per_example_p_matches_the_definition():
  u, trained, forgotten, out, out_mask = _ulira_world(2, forgets=True, M=20, S=10, n=30, F=8)
  pool = np.ones(30, bool)
  pool[:3] = False
  for exclude_all in (False, True):
    res = metrics.ulira(
      u, trained, forgotten, out, out_mask, [0, 5], pool=pool, balance=False, cap=3,
      exclude_all_targets=exclude_all,
    )
    for row, t in zip(res["per_example"], (0, 5)):
      expect_pos = np.flatnonzero(forgotten[t] & pool)
      expect_neg = np.flatnonzero(~trained[t] & pool)
      left_out = {0, 5} if exclude_all else {t}
      for x, label, p in zip(row["index"], row["label"], row["p"]):
        assert x in (expect_pos if label else expect_neg)
        ref = _ulira_reference_p(u, trained, forgotten, out, out_mask, t, x, 3, left_out)
        assert p == pytest.approx(ref, rel=1e-9, abs=1e-12)
      scored = len(row["index"]) + res["n_skipped"][list(res["targets"]).index(t)]
      assert scored == len(expect_pos) + len(expect_neg)


def test_ulira_leaves_the_target_out():
  # Each example is forgotten by 3 shadow models and by the target; the target's forgotten
  # examples sit at φ = 50, everything else is N(0, 1). Left out, the target's value is judged
  # against in = out = N(0, 1) (chance); fitted with it, "in" would stretch to cover 50.
  rng = np.random.default_rng(3)
  n, M = 60, 4
  trained = np.zeros((M, n), bool)
  trained[:, :40] = True  # models 0..3 all forgot examples 0..39;
  trained[1:, 40:] = True  # models 1..3 also forgot 40..59, which the target never saw
  forgotten = trained.copy()
  u = rng.normal(0, 1, (M, n))
  u[0, :40] = 50.0  # target 0's forgotten examples
  out = rng.normal(0, 1, (8, n))
  out_mask = np.ones((8, n), bool)
  res = metrics.ulira(u, trained, forgotten, out, out_mask, [0], balance=False, cap=None)
  row = res["per_example"][0]
  members = row["label"]
  assert members.sum() == 40 and (~members).sum() == 20
  # Leaving the target out: "in" = models 1..3 = N(0, 1); p at 50 is decided by the fitted σs,
  # and the same as our reference. Including it would give p ~ 1 for every member.
  world = (u, trained, forgotten, out, out_mask)
  leaky = [_ulira_reference_p(*world, 0, x, None, set()) for x in range(40)]
  honest = [_ulira_reference_p(*world, 0, x, None, {0}) for x in range(40)]
  assert np.mean(np.array(leaky) > 0.5) == 1.0
  np.testing.assert_allclose(row["p"][members], honest, rtol=1e-9, atol=1e-12)
  assert not np.allclose(row["p"][members], leaky)


def test_ulira_balancing_is_seeded():
  world = _ulira_world(4, forgets=True, M=32, S=32, n=200, F=30)
  a = metrics.ulira(*world, targets=[1, 2], seed=7)
  b = metrics.ulira(*world, targets=[2, 1], seed=7)  # same per-target subsample, any order
  c = metrics.ulira(*world, targets=[1, 2], seed=8)
  np.testing.assert_array_equal(a["per_example"][1]["index"], b["per_example"][0]["index"])
  assert not np.array_equal(a["per_example"][0]["index"], c["per_example"][0]["index"])
  assert (a["n_members"] == a["n_nonmembers"]).all()


def test_ulira_rejects_bad_inputs():
  u, trained, forgotten, out, out_mask = _ulira_world(5, forgets=True, M=8, S=8, n=40, F=5)
  with pytest.raises(ValueError):  # forgets what it never trained on
    metrics.ulira(u, trained, forgotten | ~trained, out, out_mask, [0])
  with pytest.raises(ValueError):
    metrics.ulira(u, trained, forgotten, out, out_mask, [0, 0])
  with pytest.raises(ValueError):
    metrics.ulira(u, trained, forgotten, out, out_mask, [8])


# ----------------------------------------------------------------------------------------------
# KLOM.


def _klom_reference(u, o, clip=100.0, bins=20, eps=1e-5, digitize=False):
  """Per-example loop from the definition: np.histogram (or EasyDUB's np.digitize) bins."""
  out = []
  for j in range(u.shape[1]):
    p_s, q_s = np.clip(u[:, j], -clip, clip), np.clip(o[:, j], -clip, clip)
    lo, hi = min(p_s.min(), q_s.min()), max(p_s.max(), q_s.max())
    if lo == hi:
      out.append(0.0)
      continue
    if digitize:  # EasyDUB binned_kl_divergence
      edges = np.linspace(lo, hi, bins + 1)
      pc = np.array([np.sum(np.digitize(p_s, edges) == i) for i in range(1, bins + 1)])
      qc = np.array([np.sum(np.digitize(q_s, edges) == i) for i in range(1, bins + 1)])
    else:
      pc, _ = np.histogram(p_s, bins=bins, range=(lo, hi))
      qc, _ = np.histogram(q_s, bins=bins, range=(lo, hi))
    p = pc / pc.sum() if pc.sum() else np.zeros(bins)
    q = qc / qc.sum() if qc.sum() else np.zeros(bins)
    kl = 0.0
    for pi, qi in zip(p, q):
      if pi > 0:
        kl += pi * math.log(pi / max(qi, eps))
    out.append(kl)
  return np.array(out)


def test_klom_matches_a_histogram_loop():
  rng = np.random.default_rng(8)
  n = 300
  u = rng.normal(0, 1, (40, n)) * rng.uniform(0.1, 5, n) + rng.normal(0, 3, n)
  o = rng.normal(0.5, 1, (30, n)) * rng.uniform(0.1, 5, n) + rng.normal(0, 3, n)
  u[:, :5] *= 80  # beyond the clip
  u[:, 5] = o[:, 5] = 2.0  # lo == hi
  u[:, 6] = np.round(u[:, 6])  # ties, values on bin edges
  np.testing.assert_allclose(metrics.klom(u, o), _klom_reference(u, o), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(
    metrics.klom(u, o, include_max=False), _klom_reference(u, o, digitize=True), rtol=1e-10,
    atol=1e-12,
  )
  np.testing.assert_allclose(
    metrics.klom(u, o, bins=7, clip=5.0), _klom_reference(u, o, bins=7, clip=5.0), rtol=1e-10,
    atol=1e-12,
  )


def test_klom_zero_for_identical_and_max_for_disjoint():
  rng = np.random.default_rng(9)
  u = rng.normal(size=(50, 20))
  np.testing.assert_array_equal(metrics.klom(u, u), 0.0)
  np.testing.assert_array_equal(metrics.klom(u, u[::-1]), 0.0)  # same histograms
  # Spikes at different values: KL = 1 · ln(1 / eps).
  spike = metrics.klom(np.full((10, 3), -1.0), np.full((12, 3), 4.0))
  np.testing.assert_allclose(spike, math.log(1e5))
  # Unlearned mass spread over two bins (1/4, 3/4) that the oracle never hits:
  # KL = Σ p ln(p / eps) = ln(1e5) − H(p).
  low = np.array([[0.0]] * 4 + [[0.5]] * 12)  # bins 0 and 2 of [0, 5] (width 0.25)
  high = np.full((8, 1), 5.0)
  h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
  assert metrics.klom(low, high)[0] == pytest.approx(math.log(1e5) - h)


def test_klom_is_fast_enough():
  rng = np.random.default_rng(10)
  u, o = rng.normal(size=(128, 4000)), rng.normal(size=(128, 4000))
  metrics.klom(u[:, :10], o[:, :10])
  start = time.perf_counter()
  metrics.klom(u, o)
  assert time.perf_counter() - start < 1.0  # typically ~0.1 s on 2 shared vCPUs


def test_klom_summary_matches_np_percentile():
  rng = np.random.default_rng(11)
  k = rng.exponential(size=500)
  k[3] = np.nan
  forget = np.zeros(500, bool)
  forget[:50] = True
  splits = {"forget": forget, "retain": np.arange(50, 400), "validation": np.arange(400, 500),
            "empty": np.zeros(0, int)}
  got = metrics.klom_summary(k, splits)
  assert got["forget"] == pytest.approx(np.percentile(np.delete(k[:50], 3), 95))
  assert got["retain"] == pytest.approx(np.percentile(k[50:400], 95))
  assert got["validation"] == pytest.approx(np.percentile(k[400:], 95))
  assert math.isnan(got["empty"])
  assert metrics.klom_summary(k, {"v": np.arange(400, 500)}, q=50)["v"] == pytest.approx(
    np.median(k[400:])
  )


def test_klom_ceiling_uses_disjoint_groups():
  rng = np.random.default_rng(12)
  oracles = rng.normal(size=(40, 200))
  a, b = oracles[:20], oracles[20:]
  np.testing.assert_allclose(metrics.klom_ceiling(a, b), _klom_reference(a, b))
  split = metrics.klom_ceiling(oracles, seed=3)
  perm = np.random.default_rng(3).permutation(40)
  np.testing.assert_allclose(
    split, _klom_reference(oracles[np.sort(perm[:20])], oracles[np.sort(perm[20:])])
  )
  # Disjoint samples of one distribution: a positive floor (against itself it would be 0).
  assert np.percentile(split, 95) > 0.3 and (metrics.klom(oracles, oracles) == 0).all()


def test_klom_rejects_bad_inputs():
  with pytest.raises(ValueError):
    metrics.klom(np.zeros((3, 4)), np.zeros((3, 5)))
  with pytest.raises(ValueError):
    metrics.klom(np.full((3, 4), np.nan), np.zeros((3, 4)))
  with pytest.raises(ValueError):
    metrics.klom_summary(np.zeros(4), {"x": np.array([5])})
  assert klom_mod.KLOM_BINS == 20 and klom_mod.KLOM_EPS == 1e-5


def test_klom_masks_equal_klom_on_the_selected_models():
  """Masked KLOM (shadow models: each example its own models) equals plain KLOM per example
  on the selected columns, computed one example at a time; an empty side is NaN."""
  from unlearn_jax.metrics import klom
  rng = np.random.default_rng(0)
  u, o = rng.normal(size=(12, 30)), rng.normal(0.5, 1.0, size=(10, 30))
  mu, mo = rng.random((12, 30)) < 0.5, rng.random((10, 30)) < 0.5
  mu[:, 0] = False
  got = klom(u, o, unlearned_mask=mu, oracle_mask=mo)
  assert np.isnan(got[0])
  for j in range(1, 30):
    if mo[:, j].any():
      want = klom(u[mu[:, j], j][:, None], o[mo[:, j], j][:, None])[0]
      assert got[j] == pytest.approx(want)
  np.testing.assert_allclose(klom(u, o, unlearned_mask=np.ones_like(mu),
                                  oracle_mask=np.ones_like(mo)), klom(u, o))
