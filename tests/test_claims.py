"""`unlearn_jax.claims`: each verdict kind on hand-made results; the paired tests against
scipy and hand computations."""

import math

import numpy as np
import pytest
from scipy import stats

from unlearn_jax import claims as C

PRIVACY = C.Claim(statement="MIA near chance after unlearning", section="30-overparam §6",
                  quantity="|MIA − 0.5|", threshold=0.05, direction="less", control="original",
                  test="sign")


def test_held_when_the_value_clears_the_control_does_not_and_the_pairs_agree():
  r = C.verdict(PRIVACY, 0.02, control_value=0.20, pairs=[-0.2, -0.15, -0.18, -0.1, -0.3])
  assert r["verdict"] == "held" and r["n_pairs"] == 5 and r["k"] == 5
  assert r["p"] == pytest.approx(1 / 32) and "sign test 5/5 pairs, p = 0.0312" in r["why"]


def test_not_held_below_threshold_or_without_a_significant_paired_test():
  r = C.verdict(PRIVACY, 0.08, control_value=0.20, pairs=[-0.1] * 6)
  assert r["verdict"] == "not held" and "is not < 0.05" in r["why"]
  # clears the threshold but the pairs split 3 / 3: p = P(K <= 3 | n = 6) = 42/64
  r = C.verdict(PRIVACY, 0.04, control_value=0.20, pairs=[-0.1, -0.1, -0.1, 0.1, 0.1, 0.1])
  assert r["verdict"] == "not held" and r["p"] == pytest.approx(42 / 64)
  # fails the threshold even though the control passes: not held, not "uninformative"
  r = C.verdict(PRIVACY, 0.08, control_value=0.01, pairs=[0.07] * 6)
  assert r["verdict"] == "not held"


def test_uninformative_when_the_control_passes_too_or_too_few_pairs():
  # the never-unlearned original passes the same test: the claim cannot be "held"
  r = C.verdict(PRIVACY, 0.012, control_value=0.035, pairs=[-0.02, -0.03, -0.01, -0.04, -0.02])
  assert r["verdict"] == "uninformative" and "original" in r["why"] and "0.035" in r["why"]
  # 3 seeds: the smallest one-sided sign-test p is 1/8 > 0.05
  r = C.verdict(PRIVACY, 0.01, control_value=0.3, pairs=[-0.3, -0.2, -0.25])
  assert r["verdict"] == "uninformative" and "0.125" in r["why"]
  # ties are dropped before counting: 5 pairs with 2 ties are 3 pairs
  r = C.verdict(PRIVACY, 0.01, control_value=0.3, pairs=[-0.3, 0.0, -0.2, 0.0, -0.25])
  assert r["verdict"] == "uninformative" and r["n_pairs"] == 3


def test_not_applicable_when_a_premise_fails_or_nothing_was_measured():
  r = C.verdict(PRIVACY, 0.01, premise=False, premise_note="the oracle's MIA is undefined")
  assert r["verdict"] == "not applicable" and r["why"] == "the oracle's MIA is undefined"
  r = C.verdict(PRIVACY, float("nan"), control_value=0.3, pairs=[-0.1] * 6)
  assert r["verdict"] == "not applicable"


def test_greater_direction_and_no_test():
  c = C.Claim(statement="e correlates strongly with the verification error",
              section="20-unroll §6", quantity="Spearman r", threshold=0.7,
              direction="greater", control="‖w_t − w_0‖ alone", test="none")
  assert C.verdict(c, 0.9, control_value=0.5)["verdict"] == "held"
  assert C.verdict(c, 0.9, control_value=0.99)["verdict"] == "uninformative"
  assert C.verdict(c, 0.6, control_value=0.5)["verdict"] == "not held"
  assert C.verdict(c, 0.9)["verdict"] == "held"  # no control given: threshold only


@pytest.mark.parametrize("seed", range(5))
def test_sign_test_equals_scipy_binomtest(seed):
  rng = np.random.default_rng(seed)
  d = np.round(rng.normal(0.3, 1.0, size=rng.integers(3, 15)), 1)
  for alt in ("greater", "less"):
    t = C.sign_test(d, alt)
    nz = d[d != 0]
    want = stats.binomtest(int((nz > 0).sum()), nz.size, 0.5, alternative=alt).pvalue
    assert t["p"] == pytest.approx(want, rel=1e-12) and t["n"] == nz.size
    assert t["min_p"] == pytest.approx(0.5 ** nz.size)


def test_wilcoxon_by_hand():
  # all 5 differences positive: the exact one-sided p is 1/32 (one arrangement of 2^5)
  t = C.wilcoxon_test([0.1, 0.4, 0.2, 0.5, 0.3], "greater")
  assert t["p"] == pytest.approx(1 / 32) and t["n"] == 5
  # ranks 1..4 with the smallest one negative: W+ = 9 of 10; P(W+ >= 9) = 2/16
  t = C.wilcoxon_test([-0.1, 0.2, 0.3, 0.4], "greater")
  assert t["p"] == pytest.approx(2 / 16)
  assert C.wilcoxon_test([0.0, 0.0], "greater")["n"] == 0


def test_claim_and_input_checks():
  with pytest.raises(ValueError, match="direction"):
    C.Claim("s", "§", "q", 0.1, direction="up")
  with pytest.raises(ValueError, match="test must be"):
    C.Claim("s", "§", "q", 0.1, test="t-test")
  with pytest.raises(ValueError, match="threshold"):
    C.Claim("s", "§", "q", math.nan)
  with pytest.raises(ValueError, match="no pairs"):
    C.verdict(PRIVACY, 0.01, control_value=0.3)
  with pytest.raises(ValueError, match="finite"):
    C.sign_test([0.1, math.inf])


def test_markdown_table_and_counts():
  rows = [C.verdict(PRIVACY, 0.02, control_value=0.2, pairs=[-0.1] * 6),
          C.verdict(PRIVACY, 0.02, control_value=0.03, pairs=[-0.01] * 6),
          C.verdict(PRIVACY, 0.09, control_value=0.2, pairs=[-0.1] * 6),
          C.verdict(PRIVACY, 0.02, premise=False)]
  assert C.count(rows) == {"held": 1, "not held": 1, "uninformative": 1, "not applicable": 1}
  table = C.markdown(rows)
  assert table.count("\n") == 6 and "| original (0.2) | sign | \\|MIA − 0.5\\| < 0.05 |" in table
  assert "0.0156 (6/6)" in table and "**uninformative**" in table and "| held |" in table
