"""The unlearning report against independent computations on synthetic logits in a fake workdir."""

import csv
import json
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC

from unlearn_jax import io, metrics
from unlearn_jax.pipelines import report

SEEDS = [0, 1, 2, 3, 4, 5]
N = len(SEEDS)
SIZES = {"forget": 40, "retain": 90, "validation": 30, "test": 60}
C = 3
METHODS = ["good", "half_diverged", "all_diverged", "broken", "never_ran"]
COSTS = {"original": {"wall_s": 10.0, "example_gradients": 1000, "epochs": 4},
         "oracle": {"wall_s": 8.0, "example_gradients": 900, "epochs": 4}}
METHOD_COST = {"wall_s": 2.0, "example_gradients": 300, "epochs": 1.0}


def _logits(rng, labels, n_models, strength):
  """Noisy logits whose true-class margin grows with `strength` (one value per model)."""
  z = rng.normal(size=(n_models, len(labels), C))
  z[:, np.arange(len(labels)), labels] += np.asarray(strength)[:, None]
  return z.astype(np.float32)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  wd = tmp_path_factory.mktemp("report")
  rng = np.random.default_rng(0)
  labels = {s: rng.integers(0, C, n) for s, n in SIZES.items()}
  strengths = {"original": [3.0, 3.2, 2.8, 3.1, 2.9, 3.0],
               "oracle": [1.5, 1.4, 1.7, 1.6, 1.5, 1.8],
               "good": [2.0, 1.8, 2.2, 1.9, 1.7, 2.1],
               "half_diverged": [2.5, 2.4, 2.6, 2.3, 2.5, 2.4],
               "all_diverged": [1.0] * N}
  for group, strength in strengths.items():
    arrays = {}
    for s in SIZES:
      arrays[f"{s}_logits"] = _logits(rng, labels[s], len(SEEDS), strength)
      arrays[f"{s}_labels"] = labels[s]
    if group == "half_diverged":
      for s in SIZES:
        arrays[f"{s}_logits"][1] = np.nan
    if group == "all_diverged":
      for s in SIZES:
        arrays[f"{s}_logits"][:] = np.nan
    (wd / "eval").mkdir(exist_ok=True)
    np.savez(wd / "eval" / f"{group}.npz", **arrays)
  config = {"seeds": SEEDS, "data": {"name": "synthetic"}, "model": {"name": "fake"},
            "forget": {"kind": "iid"}, "methods": METHODS,
            "eval": {"mia_splits": 5, "mia_seed": 0, "fq": True, "plots": True,
                     "hist_examples": 2,
                     "svc_features": ["confidence", "entropy", "m_entropy", "prob",
                                      "correctness"]}}
  io.atomic_write_json(wd / "config.json", config)
  io.atomic_write_json(wd / "eval" / "references.json", COSTS)
  done = lambda diverged: {"status": "done", "cost": METHOD_COST, "diverged": diverged,
                           "config": {"epochs": 1}, "info": {}}
  io.atomic_write_json(wd / "methods" / "good" / "result.json", done([False] * N))
  io.atomic_write_json(wd / "methods" / "half_diverged" / "result.json",
                       done([False, True] + [False] * (N - 2)))
  io.atomic_write_json(wd / "methods" / "all_diverged" / "result.json", done([True] * N))
  io.atomic_write_json(wd / "methods" / "broken" / "result.json",
                       {"status": "failed", "error": "RuntimeError: boom in broken"})
  summary = report.evaluate_workdir(wd, run_wall_s=12.5)
  return wd, labels, summary


def _load(wd, group):
  with np.load(wd / "eval" / f"{group}.npz") as f:
    return {k: f[k] for k in f.files}


def _loss(z, y):
  z = z.astype(np.float64)
  m = z.max(1)
  return m + np.log(np.exp(z - m[:, None]).sum(1)) - z[np.arange(len(y)), y]


def _acc(z, y):
  return float(np.mean(np.argmax(z, 1) == y))


KLOM_SPLITS = ("forget", "retain", "validation")


def _margins(d, models):
  """{split: [len(models), n]} margins z_y − logsumexp_{j≠y} z_j, by hand from the npz arrays."""
  out = {}
  for s in KLOM_SPLITS:
    z, y = d[f"{s}_logits"][list(models)].astype(np.float64), d[f"{s}_labels"]
    true = np.take_along_axis(z, np.broadcast_to(y[None, :, None], z.shape[:2] + (1,)), -1)[..., 0]
    others = np.where(np.arange(C)[None, None, :] == y[None, :, None], -np.inf, z)
    m = others.max(-1)
    out[s] = true - (m + np.log(np.exp(others - m[..., None]).sum(-1)))
  return out


def _klom_p95(unlearned, oracle):
  """{split: P95 of per-example KLOM} with `metrics.klom`, split by split, and np.percentile."""
  return {s: float(np.percentile(metrics.klom(unlearned[s], oracle[s]), 95))
          for s in KLOM_SPLITS}


def test_accuracy_delta_and_tow_by_hand(workdir):
  wd, labels, _ = workdir
  results = io.read_json(wd / "results.json")
  oracle, good = _load(wd, "oracle"), _load(wd, "good")
  g = results["groups"]["good"]
  oracle_mean = {s: np.mean([_acc(oracle[f"{s}_logits"][i], labels[s]) for i in range(N)])
                 for s in SIZES}
  for s in SIZES:
    accs = [_acc(good[f"{s}_logits"][i], labels[s]) for i in range(N)]
    np.testing.assert_allclose(g["per_seed"][f"{s}_accuracy"], accs)
    np.testing.assert_allclose(g["mean"][f"{s}_accuracy"], np.mean(accs))
    np.testing.assert_allclose(g["std"][f"{s}_accuracy"], np.std(accs))
    losses = [_loss(good[f"{s}_logits"][i], labels[s]).mean() for i in range(N)]
    np.testing.assert_allclose(g["per_seed"][f"{s}_loss"], losses, rtol=1e-6)
    deltas = [oracle_mean[s] - a for a in accs]
    np.testing.assert_allclose(g["delta"][f"{s}_accuracy"]["mean"], np.mean(deltas), atol=1e-12)
    np.testing.assert_allclose(g["delta"][f"{s}_accuracy"]["std"], np.std(deltas), atol=1e-12)
  for i in range(N):
    tow = 1.0
    for s in ("forget", "retain", "test"):
      tow *= 1 - abs(_acc(good[f"{s}_logits"][i], labels[s]) - oracle_mean[s])
    assert g["per_seed"]["tow"][i] == pytest.approx(tow)


def test_mia_by_direct_sklearn(workdir):
  wd, labels, _ = workdir
  g = io.read_json(wd / "results.json")["groups"]["good"]
  good = _load(wd, "good")
  for i in range(N):
    # Loss attack: forget (40) vs test (60, subsampled to 40), logistic regression, 5 folds.
    f_loss = _loss(good["forget_logits"][i], labels["forget"])
    t_loss = _loss(good["test_logits"][i], labels["test"])
    keep = np.sort(np.random.default_rng(0).choice(60, 40, replace=False))
    x = np.concatenate([t_loss[keep], f_loss])[:, None]
    y = np.concatenate([np.zeros(40), np.ones(40)])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    expected = cross_val_score(LogisticRegression(), x, y, cv=folds).mean()
    assert g["per_seed"]["mia_loss_lr"][i] == pytest.approx(expected)
    # SVC attack on the confidence p_y: retain (subsampled to |test| = 60) vs test -> forget.
    p = {s: np.exp(good[f"{s}_logits"][i].astype(np.float64)) for s in SIZES}
    p = {s: v / v.sum(1, keepdims=True) for s, v in p.items()}
    conf = {s: p[s][np.arange(SIZES[s]), labels[s]][:, None] for s in SIZES}
    keep = np.sort(np.random.default_rng(0).choice(90, 60, replace=False))
    svc = SVC(C=3, gamma="auto", kernel="rbf").fit(
        np.concatenate([conf["retain"][keep], conf["test"]]),
        np.concatenate([np.ones(60), np.zeros(60)]))
    expected = np.mean(svc.predict(conf["forget"]) == 0)
    assert g["per_seed"]["mia_svc_confidence"][i] == pytest.approx(expected)
    for feature in ("entropy", "m_entropy", "prob", "correctness"):
      assert 0.0 <= g["per_seed"][f"mia_svc_{feature}"][i] <= 1.0


def test_forgetting_quality_ceiling_and_cost(workdir):
  wd, labels, summary = workdir
  results = io.read_json(wd / "results.json")
  oracle, good = _load(wd, "oracle"), _load(wd, "good")
  conf = lambda d: np.stack([metrics.logit_scaled_confidence(d["forget_logits"][i],
                                                             labels["forget"]) for i in range(N)])
  g = results["groups"]["good"]
  expected = metrics.forgetting_quality(
      conf(good), conf(oracle), retain_acc_unlearned=g["per_seed"]["retain_accuracy"],
      retain_acc_retrained=results["groups"]["oracle"]["per_seed"]["retain_accuracy"],
      test_acc_unlearned=g["per_seed"]["test_accuracy"],
      test_acc_retrained=results["groups"]["oracle"]["per_seed"]["test_accuracy"])
  assert g["fq"]["score"] == pytest.approx(expected["score"])
  assert g["fq"]["num_models"] == N
  # As many oracle as method seeds: the ceiling uses halves (oracle 3..5 vs 0..2, M = 3).
  ceiling = metrics.forgetting_quality(conf(oracle)[3:], conf(oracle)[:3], retain_acc_unlearned=1,
                                       retain_acc_retrained=1, test_acc_unlearned=1,
                                       test_acc_retrained=1)
  assert results["oracle_ceiling"]["score"] == pytest.approx(ceiling["score"])
  assert results["oracle_ceiling"]["num_models"] == 3
  assert "M = 3, not the methods' 6" in results["oracle_ceiling"]["note"]
  assert "oracle_seeds=12 in the config argument" in results["oracle_ceiling"]["note"]
  assert results["groups"]["oracle"]["fq"]["score"] == pytest.approx(ceiling["score"])
  # Cost relative to the oracle (retraining).
  assert g["cost_relative"]["wall_s"] == pytest.approx(2.0 / 8.0)  # 6 models in each group
  assert g["cost_relative"]["example_gradients"] == pytest.approx(300 / 900)
  assert results["groups"]["original"]["cost_relative"]["wall_s"] == pytest.approx(10 / 8)
  assert summary["wall_s"] == 12.5


def test_klom_by_direct_computation(workdir):
  """P95 KLOM per split = `metrics.klom` on margins recomputed from eval/*.npz: each method's kept
  seeds against oracle models 0..5; the ceiling is the disjoint oracle halves 3..5 vs 0..2."""
  wd, _, summary = workdir
  results = io.read_json(wd / "results.json")
  groups = results["groups"]
  oracle = _margins(_load(wd, "oracle"), range(N))
  for name, kept in (("original", range(N)), ("good", range(N)),
                     ("half_diverged", [0, 2, 3, 4, 5])):
    expected = _klom_p95(_margins(_load(wd, name), kept), oracle)
    k = groups[name]["klom"]
    assert k["p95"] == pytest.approx(expected, rel=1e-12), name
    assert (k["num_models"], k["num_oracle"]) == (len(kept), N)
    assert summary["groups"][name]["klom_p95"] == pytest.approx(expected, rel=1e-12)
  ceiling = _klom_p95({s: v[3:] for s, v in oracle.items()}, {s: v[:3] for s, v in oracle.items()})
  c = results["klom_ceiling"]
  assert c["p95"] == pytest.approx(ceiling, rel=1e-12) and c["num_models"] == 3
  assert c["note"].startswith("oracle models 3..5 vs 0..2; M = 3, not the methods' 6")
  assert groups["oracle"]["klom"]["p95"] == pytest.approx(ceiling, rel=1e-12)
  assert summary["klom_ceiling"] == pytest.approx(ceiling, rel=1e-12)
  # Disjoint groups: an oracle group against itself would score 0 everywhere.
  assert _klom_p95({s: v[:3] for s, v in oracle.items()},
                   {s: v[:3] for s, v in oracle.items()}) == {s: 0.0 for s in KLOM_SPLITS}
  assert min(ceiling.values()) > 0
  assert "klom" not in groups["all_diverged"] and "klom" not in groups["broken"]
  # Power: the original's forget KLOM beside the ceiling's.
  power = results["power"]
  assert power["klom_ratio"] == pytest.approx(groups["original"]["klom"]["p95"]["forget"]
                                              / ceiling["forget"])
  # results.csv (the oracle row holds the ceiling, as for FQ) and report.md.
  with open(wd / "results.csv") as f:
    by = {r["group"]: r for r in csv.DictReader(f)}
  for s in KLOM_SPLITS:
    assert float(by["good"][f"klom_{s}_p95"]) == pytest.approx(groups["good"]["klom"]["p95"][s])
    assert float(by["oracle"][f"klom_{s}_p95"]) == pytest.approx(ceiling[s])
  assert by["broken"]["klom_forget_p95"] == ""
  md = (wd / "report.md").read_text()
  p = groups["good"]["klom"]["p95"]
  assert (f"| good | 6 vs 0..5 | {p['forget']:.3f} | {p['retain']:.3f} | {p['validation']:.3f} |"
          in md)
  assert "| KLOM forget (P95) | KLOM retain (P95) | KLOM val (P95) |" in md
  assert (f"KLOM ceiling (oracle vs oracle): forget {ceiling['forget']:.3f} / retain "
          f"{ceiling['retain']:.3f} / val {ceiling['validation']:.3f} (P95; oracle models 3..5 "
          "vs 0..2" in md)
  assert "Lower is better" in md and "KL(unlearned ‖ oracle)" in md and "20 equal-width" in md
  assert f"| KLOM forget (P95) | {groups['original']['klom']['p95']['forget']:.3f} |" in md


def test_diverged_and_failed_methods(workdir):
  wd, labels, summary = workdir
  groups = io.read_json(wd / "results.json")["groups"]
  half = groups["half_diverged"]
  assert half["status"] == f"1/{N} diverged" and half["diverged"] == [False, True] + [False] * 4
  assert half["per_seed"]["test_accuracy"][1] is None
  data = _load(wd, "half_diverged")
  accs = [_acc(data["test_logits"][i], labels["test"]) for i in (0, 2, 3, 4, 5)]
  assert half["mean"]["test_accuracy"] == pytest.approx(np.mean(accs))
  assert half["fq"]["num_models"] == N - 1
  assert groups["all_diverged"]["status"] == "diverged" and "mean" not in groups["all_diverged"]
  assert groups["broken"]["status"] == "failed"
  assert groups["broken"]["error"] == "RuntimeError: boom in broken"
  assert groups["never_ran"]["status"] == "missing"
  assert summary["groups"]["broken"]["status"] == "failed"
  # The best method skips diverged/failed ones.
  assert summary["best"]["tow"]["method"] in ("good", "half_diverged")


def test_files_have_every_row(workdir):
  wd, _, summary = workdir
  assert io.read_json(wd / "results.json")["order"] == ["original", "oracle", *METHODS]
  with open(wd / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["group"] for r in rows] == ["original", "oracle", *METHODS]
  by = {r["group"]: r for r in rows}
  assert by["broken"]["status"] == "failed" and "boom" in by["broken"]["error"]
  assert by["all_diverged"]["status"] == "diverged"
  assert by["all_diverged"]["test_accuracy_mean"] == ""
  assert float(by["good"]["rel_wall_s"]) == pytest.approx(0.25)
  md = (wd / "report.md").read_text()
  table = [line for line in md.splitlines() if line.startswith("| ")]
  for name in ["original", "oracle (retrain)", *METHODS]:
    assert any(line.startswith(f"| {name} |") for line in table), name
  assert "| broken | **FAILED** |" in md and "| all_diverged | **DIVERGED** |" in md
  assert f"| half_diverged | ok (1/{N} diverged) |" in md
  assert "RuntimeError: boom in broken" in md
  assert f"Forgetting-quality ceiling (oracle vs oracle): {summary['oracle_ceiling']:.3f}" in md
  for png in ("forget_vs_test.png", "mia.png", "confidence_hist.png"):
    assert (wd / "plots" / png).stat().st_size > 1000
    assert f"plots/{png}" in md
  s = json.loads((wd / "summary.json").read_text())
  assert set(s["groups"]) == {"original", "oracle", *METHODS}
  line = report.one_line(summary)
  assert "broken failed" in line and str(wd / "report.md") in line


def _fake_workdir(path, rng, labels, n_seeds, n_oracle, strengths):
  """A workdir with `original`, `oracle` (n_oracle models) and method `m` (n_seeds models)."""
  (path / "eval").mkdir()
  for group, n in (("original", n_seeds), ("oracle", n_oracle), ("m", n_seeds)):
    np.savez(path / "eval" / f"{group}.npz",
             **{f"{s}_logits": _logits(rng, labels[s], n, strengths[group][:n]) for s in SIZES},
             **{f"{s}_labels": labels[s] for s in SIZES})
  io.atomic_write_json(path / "config.json", {
      "seeds": list(range(n_seeds)), "oracle_seeds": list(range(n_oracle)),
      "data": {"name": "synthetic"}, "model": {"name": "fake"},
      "forget": {"kind": "iid"}, "methods": ["m"], "eval": {"plots": False}})
  io.atomic_write_json(path / "methods" / "m" / "result.json",
                       {"status": "done", "cost": METHOD_COST, "diverged": [False] * n_seeds})
  io.atomic_write_json(path / "eval" / "references.json", COSTS)


def test_ceiling_and_fq_with_twice_as_many_oracle_seeds(tmp_path):
  """3 method seeds, 6 oracle seeds: methods are scored against oracle models 0..2, the ceiling
  is oracle models 3..5 against the same 0..2 (M = 3 on both sides), Δ uses all 6."""
  rng = np.random.default_rng(2)
  labels = {s: rng.integers(0, C, n) for s, n in SIZES.items()}
  strengths = {"original": [3.0] * 3, "oracle": [1.5, 1.4, 1.7, 1.6, 1.5, 1.8],
               "m": [2.0, 1.8, 2.2]}
  _fake_workdir(tmp_path, rng, labels, 3, 6, strengths)
  report.evaluate_workdir(tmp_path)
  results = io.read_json(tmp_path / "results.json")
  oracle, m = _load(tmp_path, "oracle"), _load(tmp_path, "m")
  conf = lambda d, n: np.stack([metrics.logit_scaled_confidence(d["forget_logits"][i],
                                                                labels["forget"])
                                for i in range(n)])
  og, mg = results["groups"]["oracle"], results["groups"]["m"]
  assert og["seeds"] == list(range(6)) and mg["seeds"] == [0, 1, 2]
  assert len(og["per_seed"]["test_accuracy"]) == 6
  expected = metrics.forgetting_quality(
      conf(m, 3), conf(oracle, 6)[:3], retain_acc_unlearned=mg["per_seed"]["retain_accuracy"],
      retain_acc_retrained=og["per_seed"]["retain_accuracy"],
      test_acc_unlearned=mg["per_seed"]["test_accuracy"],
      test_acc_retrained=og["per_seed"]["test_accuracy"])
  assert mg["fq"]["score"] == pytest.approx(expected["score"]) and mg["fq"]["num_models"] == 3
  ceiling = metrics.forgetting_quality(conf(oracle, 6)[3:], conf(oracle, 6)[:3],
                                       retain_acc_unlearned=1, retain_acc_retrained=1,
                                       test_acc_unlearned=1, test_acc_retrained=1)
  assert results["oracle_ceiling"]["score"] == pytest.approx(ceiling["score"])
  assert results["oracle_ceiling"]["num_models"] == 3
  assert results["oracle_ceiling"]["note"] == "oracle models 3..5 vs 0..2"
  # Wall time per model: 2 s for 3 method models vs 8 s for 6 oracle models.
  assert mg["cost_relative"]["wall_s"] == pytest.approx((2.0 / 3) / (8.0 / 6))
  oracle_test = np.mean([_acc(oracle["test_logits"][i], labels["test"]) for i in range(6)])
  m_test = [_acc(m["test_logits"][i], labels["test"]) for i in range(3)]
  np.testing.assert_allclose(mg["delta"]["test_accuracy"]["per_seed"],
                             [oracle_test - a for a in m_test])
  om = _margins(oracle, range(6))
  assert mg["klom"]["p95"] == pytest.approx(
      _klom_p95(_margins(m, range(3)), {s: v[:3] for s, v in om.items()}), rel=1e-12)
  klom_ceiling = _klom_p95({s: v[3:] for s, v in om.items()}, {s: v[:3] for s, v in om.items()})
  assert results["klom_ceiling"]["p95"] == pytest.approx(klom_ceiling, rel=1e-12)
  assert results["klom_ceiling"]["note"] == "oracle models 3..5 vs 0..2"
  md = (tmp_path / "report.md").read_text()
  assert "| oracle (retrain) | 3..5 vs 0..2 | ceiling " in md and "| m | 3 vs 0..2 |" in md
  assert "3 seeds (6 oracle seeds)" in md and "first 3 of the 6 oracle seeds" in md
  assert f"oracle vs oracle): {ceiling['score']:.3f} (oracle models 3..5 vs 0..2)" in md


def test_ceiling_needs_six_oracle_seeds_and_two_seed_fq(tmp_path):
  """With 2 seeds: no ceiling ("needs >= 6 oracle seeds") and no FQ score bin (M = 2)."""
  rng = np.random.default_rng(1)
  labels = {s: rng.integers(0, C, n) for s, n in SIZES.items()}
  (tmp_path / "eval").mkdir()
  for group in ("original", "oracle", "m"):
    np.savez(tmp_path / "eval" / f"{group}.npz",
             **{f"{s}_logits": _logits(rng, labels[s], 2, [2.0, 2.0]) for s in SIZES},
             **{f"{s}_labels": labels[s] for s in SIZES})
  io.atomic_write_json(tmp_path / "config.json", {
      "seeds": [0, 1], "data": {"name": "synthetic"}, "model": {"name": "fake"},
      "forget": {"kind": "iid"}, "methods": ["m"], "eval": {"plots": False}})
  io.atomic_write_json(tmp_path / "methods" / "m" / "result.json",
                       {"status": "done", "cost": METHOD_COST, "diverged": [False, False]})
  report.evaluate_workdir(tmp_path)
  results = io.read_json(tmp_path / "results.json")
  assert results["oracle_ceiling"]["score"] is None
  assert "needs >= 6 oracle seeds (have 2)" in results["oracle_ceiling"]["note"]
  assert results["groups"]["m"]["fq"]["score"] is None
  md = (tmp_path / "report.md").read_text()
  assert "needs >= 6 oracle seeds (have 2)" in md
  # KLOM: the method's 2 seeds against the 2 oracle seeds; no ceiling, with the note.
  assert results["klom_ceiling"]["p95"] is None
  assert "needs >= 6 oracle seeds (have 2)" in results["klom_ceiling"]["note"]
  assert "KLOM ceiling (oracle vs oracle): n/a (needs >= 6 oracle seeds (have 2)" in md
  assert "| oracle (retrain) | — | n/a | n/a | n/a |" in md
  assert results["groups"]["m"]["klom"]["p95"] == pytest.approx(_klom_p95(
      _margins(_load(tmp_path, "m"), [0, 1]), _margins(_load(tmp_path, "oracle"), [0, 1])))
  assert results["power"]["klom_ratio"] is None
  assert not (tmp_path / "plots").exists()
  # Without references.json, costs are unknown but everything else is reported.
  assert math.isfinite(results["groups"]["m"]["mean"]["tow"])


def test_ceiling_needs_two_groups_of_three_oracle_models():
  """Groups of 2 models leave no forget-score bin: the ceiling would be 0 by construction."""
  conf = np.random.default_rng(0).normal(size=(6, 30))
  for k in (2, 4, 5):
    c = report._ceiling(conf[:k], 3)
    assert c["score"] is None and f"needs >= 6 oracle seeds (have {k})" in c["note"]
  assert report._ceiling(conf, 3)["score"] is not None
  # With 2 method seeds the ceiling is still shown at M = 3, noted as such.
  c = report._ceiling(conf, 2)
  assert c["num_models"] == 3 and "M = 3, not the methods' 2" in c["note"]
  c = report._ceiling(conf[:5], 3, num_diverged=1)
  assert c["score"] is None and "1 diverged oracle seed(s) left out" in c["note"]
  assert report.fq_reference(3, 6) == (3, 3) and report.fq_reference(6, 6) == (6, 3)


def test_diverged_oracle_seed_is_left_out_of_the_ceiling(tmp_path):
  """6 oracle seeds, one non-finite: 5 kept leave no two groups of 3, and the note says why;
  methods are still scored against the first 3 kept oracle models."""
  rng = np.random.default_rng(3)
  labels = {s: rng.integers(0, C, n) for s, n in SIZES.items()}
  strengths = {"original": [3.0] * 3, "oracle": [1.5, 1.4, 1.7, 1.6, 1.5, 1.8],
               "m": [2.0, 1.8, 2.2]}
  _fake_workdir(tmp_path, rng, labels, 3, 6, strengths)
  with np.load(tmp_path / "eval" / "oracle.npz") as f:
    arrays = {k: f[k] for k in f.files}
  for s in SIZES:
    arrays[f"{s}_logits"][1] = np.nan  # oracle seed 1 diverged
  np.savez(tmp_path / "eval" / "oracle.npz", **arrays)
  summary = report.evaluate_workdir(tmp_path)
  results = io.read_json(tmp_path / "results.json")
  assert results["groups"]["oracle"]["status"] == "1/6 diverged"
  assert results["oracle_ceiling"]["score"] is None
  assert "1 diverged oracle seed(s) left out" in results["oracle_ceiling"]["note"]
  conf = lambda i: metrics.logit_scaled_confidence(arrays["forget_logits"][i], labels["forget"])
  m = _load(tmp_path, "m")
  mconf = np.stack([metrics.logit_scaled_confidence(m["forget_logits"][i], labels["forget"])
                    for i in range(3)])
  eps = metrics.per_example_epsilon(mconf, np.stack([conf(0), conf(2), conf(3)]))
  assert results["groups"]["m"]["fq"]["mean_eps"] == pytest.approx(float(np.mean(eps)))
  assert results["groups"]["m"]["klom"]["p95"] == pytest.approx(
      _klom_p95(_margins(m, range(3)), _margins(arrays, [0, 2, 3])), rel=1e-12)
  assert results["klom_ceiling"]["p95"] is None
  assert "1 diverged oracle seed(s) left out" in results["klom_ceiling"]["note"]
  assert summary["oracle_seeds"] == list(range(6))


def test_benchmark_power_no_change_flag_and_eps_histograms(workdir, tmp_path):
  """Power = |original − oracle| beside the oracle seeds' std; a method returning the original
  logits is flagged 'no change'; ε histograms count the per-example ε of the FQ score."""
  import shutil
  wd = tmp_path / "wd"
  shutil.copytree(workdir[0], wd)
  shutil.copy(wd / "eval" / "original.npz", wd / "eval" / "noop.npz")
  io.atomic_write_json(wd / "methods" / "noop" / "result.json",
                       {"status": "done", "cost": METHOD_COST, "diverged": [False] * N,
                        "config": {}, "info": {}})
  config = io.read_json(wd / "config.json")
  config["methods"] = config["methods"] + ["noop"]
  io.atomic_write_json(wd / "config.json", config)
  report.evaluate_workdir(wd)
  results = io.read_json(wd / "results.json")
  groups = results["groups"]
  assert groups["noop"]["unchanged"] and not groups["good"]["unchanged"]
  assert "| noop | **no change** |" in (wd / "report.md").read_text()
  assert report.best_methods(results)["tow"]["method"] != "noop"

  power = results["power"]
  by_key = {r["key"]: r for r in power["rows"]}
  assert set(by_key) == {"forget_accuracy", "mia_loss_lr", "mia_svc_confidence", "tow"}
  for key, r in by_key.items():
    orig = [v for v in groups["original"]["per_seed"][key] if v is not None]
    oracle = [v for v in groups["oracle"]["per_seed"][key] if v is not None]
    assert r["distance"] == pytest.approx(abs(np.mean(orig) - np.mean(oracle)))
    assert r["spread"] == pytest.approx(np.std(oracle))
    assert r["z"] == pytest.approx(r["distance"] / r["spread"])
  assert power["fq_ratio"] == pytest.approx(groups["original"]["fq"]["score"]
                                            / results["oracle_ceiling"]["score"])
  expected = all(by_key[k]["z"] > report.POWER_Z for k in ("forget_accuracy", "mia_loss_lr")) \
      and power["fq_ratio"] <= report.POWER_FQ
  assert power["can_rank"] == expected
  assert ("can rank methods" if expected else "cannot rank methods") in power["verdict"]
  assert "## Benchmark power" in (wd / "report.md").read_text()

  # ε histogram of the original against the first N oracle seeds, recomputed directly
  orig, oracle = _load(wd, "original"), _load(wd, "oracle")
  conf = lambda d: np.stack([metrics.logit_scaled_confidence(d["forget_logits"][i],
                                                             d["forget_labels"])
                             for i in range(d["forget_logits"].shape[0])])
  ref, _ = report.fq_reference(N, oracle["forget_logits"].shape[0])
  eps = metrics.per_example_epsilon(conf(orig), conf(oracle)[:ref])
  counts, _ = np.histogram(np.minimum(eps, metrics.EPSILON_CAP), bins=report.EPS_EDGES)
  assert groups["original"]["fq"]["eps_hist"]["counts"] == counts.tolist()
  assert sum(counts) == SIZES["forget"]
  assert (wd / "plots" / "epsilon_hist.png").stat().st_size > 1000


def test_power_verdict_on_a_setting_that_cannot_rank():
  same = {"mean": {"forget_accuracy": 0.95, "mia_loss_lr": 0.5}, "std": {}}
  oracle = {"mean": {"forget_accuracy": 0.95, "mia_loss_lr": 0.5},
            "std": {"forget_accuracy": 0.01, "mia_loss_lr": 0.02},
            "per_seed": {"forget_accuracy": [0.94, 0.95, 0.96, 0.95]}}
  p = report.benchmark_power({**same, "fq": {"score": 0.3}}, oracle, {"score": 0.35})
  assert not p["can_rank"] and p["verdict"].startswith("cannot rank methods")
  far = {"mean": {"forget_accuracy": 1.0, "mia_loss_lr": 0.7}, "std": {}, "fq": {"score": 0.1}}
  p = report.benchmark_power(far, oracle, {"score": 0.35})
  assert p["can_rank"] and p["fq_ratio"] == pytest.approx(0.1 / 0.35)
  p = report.benchmark_power(far, oracle, {"score": None})  # no FQ: no claim of power
  assert not p["can_rank"] and "FQ" in p["verdict"]
  few = {**oracle, "per_seed": {"forget_accuracy": [0.94, 0.96]}}
  assert not report.benchmark_power(far, few, {"score": 0.35})["can_rank"]
