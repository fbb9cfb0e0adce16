"""Verdicts that can fail: a paper's claim as data, checked against a control and a paired test.

A `Claim` names what the paper says (`statement`, `section`), the measured quantity, the
direction and threshold it must clear (stated in the study's config before the run), the
control it must beat, and the paired test over seeds (or runs, triplets) that decides it.
`verdict` is a pure function of the numbers, so a report can be re-checked from its results
file without recomputing anything. Four verdicts:

* `held`: the measured value clears the threshold, the control does not, and (with pairs) the
  paired test rejects "no effect" at level `alpha`;
* `not held`: the value does not clear the threshold (whatever the control does), or it does
  but the paired test does not reject;
* `uninformative`: the value clears the threshold but so does the control (the test cannot tell
  the method from doing nothing; e.g. a privacy score the never-unlearned original also passes),
  or no outcome of the paired test could reach `alpha` with this many pairs (3 seeds: the
  smallest one-sided sign-test p is 1/8);
* `not applicable`: a premise of the claim fails (e.g. the baseline it is relative to is zero).

Paired tests: the exact sign test (ties dropped; Dixon & Mood 1946) and the Wilcoxon signed-rank
test (`scipy.stats.wilcoxon`, exact for small n), one-sided in the claim's direction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

VERDICTS = ("held", "not held", "uninformative", "not applicable")
TESTS = ("none", "sign", "wilcoxon")
DIRECTIONS = ("greater", "less")


@dataclasses.dataclass(frozen=True)
class Claim:
  """One claim. `direction="greater"`: the quantity must exceed `threshold` (and the paired
  differences method − control must be positive); `"less"`: below it (differences negative)."""
  statement: str
  section: str
  quantity: str
  threshold: float
  direction: str = "greater"
  control: str = "original"
  test: str = "sign"
  alpha: float = 0.05

  def __post_init__(self):
    if self.direction not in DIRECTIONS:
      raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
    if self.test not in TESTS:
      raise ValueError(f"test must be one of {TESTS}, got {self.test!r}")
    if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)):
      raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")
    if not 0 < self.alpha < 1:
      raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")


def sign_test(diffs: Sequence[float], alternative: str = "greater") -> dict[str, Any]:
  """Exact sign test of paired differences: `n` non-zero pairs, `k` of them positive, the
  one-sided p-value P(K >= k) ("greater") or P(K <= k) ("less") under Binomial(n, 1/2), and
  `min_p`, the smallest p any outcome with n pairs could give (0.5^n)."""
  d = np.asarray(diffs, np.float64).ravel()
  if not np.isfinite(d).all():
    raise ValueError("paired differences must be finite")
  d = d[d != 0]
  n, k = int(d.size), int((d > 0).sum())
  if alternative == "greater":
    p = sum(math.comb(n, j) for j in range(k, n + 1)) / 2.0 ** n
  elif alternative == "less":
    p = sum(math.comb(n, j) for j in range(0, k + 1)) / 2.0 ** n
  else:
    raise ValueError(f"alternative must be greater or less, got {alternative!r}")
  return {"test": "sign", "n": n, "k": k, "p": float(p), "min_p": float(0.5 ** n)}


def wilcoxon_test(diffs: Sequence[float], alternative: str = "greater") -> dict[str, Any]:
  """One-sided Wilcoxon signed-rank test (zeros dropped), `scipy.stats.wilcoxon`; `min_p` is
  the exact test's smallest p with n pairs (all ranks on one side: 0.5^n)."""
  from scipy import stats

  d = np.asarray(diffs, np.float64).ravel()
  if not np.isfinite(d).all():
    raise ValueError("paired differences must be finite")
  d = d[d != 0]
  n = int(d.size)
  if n == 0:
    return {"test": "wilcoxon", "n": 0, "k": 0, "p": 1.0, "min_p": 1.0}
  p = float(stats.wilcoxon(d, alternative=alternative, zero_method="wilcox").pvalue)
  return {"test": "wilcoxon", "n": n, "k": int((d > 0).sum()), "p": p, "min_p": 0.5 ** n}


def _clears(claim: Claim, value: float) -> bool:
  return value > claim.threshold if claim.direction == "greater" else value < claim.threshold


def verdict(claim: Claim, value: float, *, control_value: Optional[float] = None,
            pairs: Optional[Sequence[float]] = None, premise: bool = True,
            premise_note: str = "") -> dict[str, Any]:
  """The verdict of `claim` on the measured `value`, the control's value on the same quantity,
  and the paired differences method − control (one per seed / run), as a row for the report."""
  row: dict[str, Any] = {
      "statement": claim.statement, "section": claim.section, "quantity": claim.quantity,
      "threshold": claim.threshold, "direction": claim.direction, "control": claim.control,
      "test": claim.test, "alpha": claim.alpha, "value": _num(value),
      "control_value": _num(control_value), "p": None, "n_pairs": None, "k": None}
  if not premise:
    return {**row, "verdict": "not applicable", "why": premise_note or "a premise fails"}
  if value is None or not math.isfinite(float(value)):
    return {**row, "verdict": "not applicable", "why": "the quantity could not be measured"}
  side = ">" if claim.direction == "greater" else "<"
  if claim.test != "none":
    if pairs is None:
      raise ValueError(f"claim {claim.statement!r} uses the {claim.test} test but no pairs "
                       "were given")
    fn = sign_test if claim.test == "sign" else wilcoxon_test
    t = fn(pairs, claim.direction)
    if claim.direction == "less":  # k: the pairs in the claimed direction
      t = {**t, "k": t["n"] - t["k"]}
    row.update(p=t["p"], n_pairs=t["n"], k=t["k"])
  if not _clears(claim, float(value)):
    return {**row, "verdict": "not held",
            "why": f"{claim.quantity} {float(value):.4g} is not {side} {claim.threshold:g}"}
  if control_value is not None and math.isfinite(float(control_value)) and _clears(
      claim, float(control_value)):
    return {**row, "verdict": "uninformative",
            "why": f"the control ({claim.control}) also has {claim.quantity} "
                   f"{float(control_value):.4g} {side} {claim.threshold:g}"}
  if claim.test != "none" and t["min_p"] > claim.alpha:
    return {**row, "verdict": "uninformative",
            "why": f"{t['n']} non-tied pairs: the {claim.test} test cannot reach p <= "
                   f"{claim.alpha:g} (smallest possible p {t['min_p']:.3g})"}
  if claim.test != "none" and t["p"] > claim.alpha:
    return {**row, "verdict": "not held",
            "why": f"{claim.test} test over {t['n']} pairs: {t['k']} in the claimed direction, "
                   f"p = {t['p']:.3g} > {claim.alpha:g}"}
  why = f"{claim.quantity} {float(value):.4g} {side} {claim.threshold:g}"
  if claim.test != "none":
    why += f"; {claim.test} test {t['k']}/{t['n']} pairs, p = {t['p']:.3g}"
  return {**row, "verdict": "held", "why": why}


def _num(v) -> Optional[float]:
  return None if v is None else float(v)


def count(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
  """How many rows have each verdict."""
  return {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS}


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
  """The claims table of a report: claim, section, control, test, threshold, value, p, verdict."""
  out = ["| claim | section | control (its value) | test | threshold | value | p (pairs) "
         "| verdict | why |", "|---|---|---|---|---|---|---|---|---|"]
  esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731 - cells may contain ||w||
  for r in rows:
    side = ">" if r["direction"] == "greater" else "<"
    ctrl = r["control"] + ("" if r["control_value"] is None else f" ({r['control_value']:.4g})")
    p = "—" if r["p"] is None else f"{r['p']:.3g} ({r['k']}/{r['n_pairs']})"
    value = "—" if r["value"] is None else f"{r['value']:.4g}"
    verdict_cell = r["verdict"] if r["verdict"] == "held" else f"**{r['verdict']}**"
    out.append(f"| {esc(r['statement'])} | {esc(r['section'])} | {esc(ctrl)} | {r['test']} | "
               f"{esc(r['quantity'])} {side} {r['threshold']:g} | {value} | {p} | "
               f"{verdict_cell} | {esc(r['why'])} |")
  return "\n".join(out) + "\n"
