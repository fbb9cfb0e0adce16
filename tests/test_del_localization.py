"""experiments.del_localization end to end on its `quick` config (in-process launcher, real
files), its resumability, and its one-line refusals of bad input."""

import json

import numpy as np
import pytest

import bad_inputs as bi
from experiments.configs import del_localization as del_config
from unlearn_jax import io, localize
from unlearn_jax.pipelines import del_localization as dl

CONFIG = bi.CONFIGS / "del_localization.py"


def _run(argv):
  return bi.run_launcher_module("experiments.del_localization", CONFIG, argv)


@pytest.mark.slow
def test_quick_study_end_to_end_and_resume(tmp_path, monkeypatch):
  wd = tmp_path / "del"
  argv = [f"--config={CONFIG}:quick", "--config.progress=False", f"--workdir={wd}"]
  rc, out, err = _run(argv)
  assert rc == 0, err
  assert out.startswith("del_localization digits/mlp x3 seeds") and "claims held" in out
  report = (wd / "report.md").read_text()
  for part in ("## (a)", "## (b)", "## (c)", "## (d)", "## (e)", "Per-layer mask summary",
               "Headline claims", "Baselines tuned on validation", "Random-Label (full) tuned"):
    assert part in report
  res = io.read_json(wd / "results.json")
  cells = dl.plan_cells(del_config.get_config("quick"))
  for kind in ("iid", "non_iid"):
    r = res["results"][kind]
    # the planned cells, plus the points a baseline's grid grew by past its edge
    extra = set(r["cells"]) - set(cells)
    assert set(cells) <= set(r["cells"]) and all("+tune:" in n for n in extra)
    assert extra <= {x["cell"] for x in r["tuned"]["Random-Label (full)"]["rows"]}
    p = r["num_params"]
    for name, c in r["cells"].items():
      assert c["diverged"] == 0 and len(c["per_seed"]["forget_accuracy"]) == 3
      if c["strategy"] not in ("none", "critmem"):  # every budgeted mask hits it exactly
        want = localize.budget_count(c["alpha"], p) / p
        np.testing.assert_allclose(c["mask_fraction"], [want] * 3)
      # Δ = oracle mean − cell, per seed
      d = c["delta"]["forget_accuracy"]
      np.testing.assert_allclose(d["per_seed"], [r["oracle"]["mean"]["forget_accuracy"] - v
                                                 for v in c["per_seed"]["forget_accuracy"]])
    layers = r["masks"]["del@0.3"]["layers"]
    assert sum(l["size"] for l in layers) == p
    assert abs(sum(np.mean(l["selected"]) for l in layers) - localize.budget_count(0.3, p)) < 1
  # the IID and non-IID forget sets give different DEL masks on the same original models
  assert all(v < 0.95 for v in res["overlaps"]["del"])
  assert {c["kind"] for c in res["claims"]} >= {"iid", "non_iid"}
  for kind in ("iid", "non_iid"):  # the claims compare DEL with the tuned baseline's cell
    t = res["results"][kind]["tuned"]["Random-Label (full)"]
    assert t["cell"] in res["results"][kind]["cells"] and np.isfinite(t["objective"])
    assert any("Random-Label (full) (tuned)" in c["claim"] for c in res["claims"]
               if c["kind"] == kind)
  # the original group was trained once and copied to the second kind
  a = json.loads((wd / "iid" / "models" / "original" / "metrics.jsonl").read_text().split("\n")[0])
  b = json.loads((wd / "non_iid" / "models" / "original" / "metrics.jsonl").read_text()
                 .split("\n")[0])
  assert a == b

  def fail(*args, **kwargs):
    raise AssertionError("a finished cell was computed again")
  monkeypatch.setattr(dl, "run_cell", fail)
  monkeypatch.setattr(dl, "compute_masks", fail)
  rc, out2, err = _run(argv)
  assert rc == 0, err
  assert out2.split("|")[:4] == out.split("|")[:4]
  # A corrupted file of each kind the study keeps is a one-line error naming it (a corrupted
  # cell record is recomputed instead, as a half-written one is).
  monkeypatch.undo()
  masks = sorted((wd / "iid" / "masks").glob("*.json"))[0] if (wd / "iid" / "masks").exists() \
      else None
  for path in [wd / "iid" / "eval" / "reference_metrics.json", masks,
               next((wd / "iid").rglob("del@0.3.npz"), None)]:
    if path is None:
      continue
    good = path.read_bytes()
    path.write_bytes(b"PK\x03\x04 torn" if path.suffix == ".npz" else b'{"ora')
    rc, _, err = _run(argv)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and path.name in lines[0] and "corrupted" in lines[0], err
    path.write_bytes(good)


@pytest.mark.parametrize("override,field", [
    ("--config.strategies=('del','magic')", "config.strategies"),
    ("--config.budgets=(0.3,1.5)", "config.budgets"),
    ("--config.parts=('a','z')", "config.parts"),
    ("--config.algorithms=('finetune',)", "config.algorithms"),
    ("--config.method_configs.random_label.learning_rate=-1.0", "config.method_configs.random_label"),
    ("--config.localization.top_h=2.0", "config.localization.top_h"),
    ("--config.reference.train.epochs=0", "config.reference.train.epochs"),
    ("--config.baselines.space.random_label.learning_rate=(0.01,0.01)",
     "config.baselines.space.random_label"),
    ("--config.baselines.goal=bias", "config.baselines.goal"),
    ("--config.claims_paper_stds=0.0", "config.claims_paper_stds"),
])
def test_bad_input_is_refused_in_one_line_before_anything_is_written(tmp_path, override, field):
  wd = tmp_path / "del"
  rc, out, err = _run([f"--config={CONFIG}:quick", "--config.progress=False", override,
                       f"--workdir={wd}"])
  assert rc == 2 and field in err and len(err.strip().splitlines()) == 1, err
  assert err.startswith("error: ") and not wd.exists()


def _entry(deltas, mia=0.5, test=0.9):
  """A cell summary as `summarize_cell` makes it: per-seed Δforget (oracle − cell)."""
  d = np.asarray(deltas, np.float64)
  return {"cell": "x", "mean": {"test_accuracy": test, dl.MIA: mia},
          "std": {"test_accuracy": 0.0, dl.MIA: 0.0},
          "per_seed": {dl.MIA: [mia] * len(d), "forget_accuracy": list(0.7 - d)},
          "delta": {"forget_accuracy": {"mean": float(d.mean()), "std": float(d.std()),
                                        "per_seed": list(d)},
                    "test_accuracy": {"mean": 0.0, "std": 0.0}}}


def _results(del_d, other_d, original_d, seeds=6):
  cells = {dl.cell_name("del", 0.3, "reset_finetune"): {**_entry(del_d), "parts": []},
           dl.cell_name("none", None, "finetune"): {**_entry(other_d), "parts": []}}
  oracle = {"mean": {"forget_accuracy": 0.7, dl.MIA: 0.5}, "std": {"forget_accuracy": 0.005}}
  return {"iid": {"oracle": oracle, "original": _entry(original_d), "cells": cells}}


def test_check_claims_verdicts_on_hand_made_results():
  """DEL within 1 pp of the oracle and the original 30 pp off: `held`; the original within
  the tolerance too: `uninformative`; DEL closer than Finetune in 6/6 seeds: the sign test's
  p = 1/64, `held`; with 4 seeds (smallest p 1/16): `uninformative`; closer in 3/6: `not held`."""
  def by(rows, prefix):
    return next(r for r in rows if r["claim"].startswith(prefix))
  match = "DEL at α = 0.3 matches the oracle on forget accuracy, and the original"
  closer = "DEL is closer to the oracle on forget accuracy than Finetune (full)"
  rows = dl.check_claims(_results([0.01] * 6, [0.10] * 6, [0.30] * 6), 0.3, 2.0)
  assert by(rows, match)["verdict"] == "held"
  r = by(rows, closer)
  assert r["verdict"] == "held" and "6/6 seeds" in r["value"] and "p = 0.0156" in r["value"]
  rows = dl.check_claims(_results([0.01] * 6, [0.10] * 6, [0.015] * 6), 0.3, 2.0)
  assert by(rows, match)["verdict"] == "uninformative" and "original" in by(rows, match)["why"]
  rows = dl.check_claims(_results([0.01] * 4, [0.10] * 4, [0.30] * 4), 0.3, 2.0)
  assert by(rows, closer)["verdict"] == "uninformative"
  rows = dl.check_claims(_results([0.01, 0.01, 0.01, 0.2, 0.2, 0.2], [0.1] * 6, [0.3] * 6),
                         0.3, 2.0)
  assert by(rows, closer)["verdict"] == "not held"
  # the tolerance is max(2 pp, 2 oracle stds): DEL 3 pp off is not within 2 pp
  rows = dl.check_claims(_results([0.03] * 6, [0.10] * 6, [0.30] * 6), 0.3, 2.0)
  assert by(rows, match)["verdict"] == "not held"


def test_check_claims_uses_the_tuned_baseline_and_the_papers_numbers():
  """With a tuned Finetune the claim names it and compares with its cell, not the preset; the
  non-IID rows compare ours with the paper's Δforget itself (DEL +0.43 ± 1.06 pp)."""
  res = _results([0.01] * 6, [0.30] * 6, [0.30] * 6)
  tuned_name = dl.cell_name("none", None, "finetune", 10, {"learning_rate": 0.03})
  res["iid"]["cells"][tuned_name] = {**_entry([0.005] * 6), "parts": ["t"]}
  res["iid"]["tuned"] = {"Finetune (full)": {"cell": tuned_name, "point": {}, "edge": []}}
  rows = dl.check_claims(res, 0.3, 2.0)
  r = next(r for r in rows if "than Finetune (full) (tuned)" in r["claim"])
  assert r["verdict"] == "not held" and "0/6 seeds" in r["value"]  # the tuned one is closer
  assert not any("than Finetune (full)," in r["claim"] for r in rows)
  non = _results([0.004] * 6, [0.1] * 6, [0.3] * 6)
  non["non_iid"] = non.pop("iid")
  rows = dl.check_claims(non, 0.3, 2.0)
  paper = next(r for r in rows if r["claim"].startswith("DEL's Δforget on the non-IID"))
  assert paper["verdict"] == "held" and "+0.4 ± 0.0 pp" in paper["value"]
  non["non_iid"]["cells"][dl.cell_name("del", 0.3, "reset_finetune")] = {
      **_entry([0.05] * 6), "parts": []}
  rows = dl.check_claims(non, 0.3, 2.0)
  paper = next(r for r in rows if r["claim"].startswith("DEL's Δforget on the non-IID"))
  assert paper["verdict"] == "not held"  # 5 pp vs 0.43: beyond 2 x 1.06


def test_select_tuned_minimises_the_validation_objective_and_flags_the_edge():
  cfg = del_config.get_config("quick")
  plan = dl.tuning_plan(cfg)
  assert list(plan) == ["Random-Label (full)"]
  cands = plan["Random-Label (full)"]
  assert [c["point"] for c in cands] == [{"learning_rate": 0.01}, {"learning_rate": 0.05}]
  assert all(c["epochs"] == cfg.method_configs["del"].epochs for c in cands)

  def summary(val, fgt):
    return {"per_seed": {"validation_accuracy": val, "forget_accuracy": fgt}}

  # J = 0.6 err_val + 0.4 |err_forget - err_val|, mean over seeds
  sums = {cands[0]["name"]: summary([0.90, 0.80], [1.0, 1.0]),  # J = 0.6*.15 + 0.4*.15 = .15
          cands[1]["name"]: summary([0.85, 0.85], [0.85, 0.85])}  # J = 0.09
  out = dl.select_tuned(cfg, sums, plan)["Random-Label (full)"]
  assert out["cell"] == cands[1]["name"] and out["edge"] == ["learning_rate"]
  np.testing.assert_allclose([r["objective"] for r in out["rows"]], [0.15, 0.09])
  sums[cands[1]["name"]] = summary([0.85, None], [0.85, None])  # a diverged seed: +inf
  out = dl.select_tuned(cfg, sums, plan)["Random-Label (full)"]
  assert out["cell"] == cands[0]["name"] and out["rows"][1]["objective"] == float("inf")


def test_a_selection_on_the_grid_edge_extends_the_grid():
  cfg = del_config.get_config("quick")
  plan = dl.tuning_plan(cfg)
  hp = {"random_label": dict(cfg.method_configs["random_label"])}
  tuned = {"Random-Label (full)": {"point": {"learning_rate": 0.05}, "edge": ["learning_rate"]}}
  new = dl.extend_plan(plan, tuned, hp)
  assert [c["point"] for c in new] == [{"learning_rate": 0.25}]  # 0.05 x (0.05 / 0.01)
  assert plan["Random-Label (full)"][-1] is new[0]
  assert dl.extend_plan(plan, tuned, hp) == []  # the same point is not added twice
  # a step the method refuses (NegGrad+'s β past 1) adds nothing
  cfg.algorithms = ("reset_finetune", "neggrad_plus")
  cfg.baselines.space = {"neggrad_plus": {"beta": (0.97, 0.99)}}
  plan = dl.tuning_plan(cfg)
  hp = {"neggrad_plus": dict(cfg.method_configs["neggrad_plus"])}
  tuned = {"NegGrad+ (full)": {"point": {"beta": 0.99}, "edge": ["beta"]}}
  assert dl.extend_plan(plan, tuned, hp) == []
