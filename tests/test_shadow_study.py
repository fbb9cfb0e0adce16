"""The shadow study: RUM's claim check on hand-made gaps (every verdict), and the quick study
end to end through its launcher."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unlearn_jax.pipelines.shadow_study import check_claim

ROOT = Path(__file__).resolve().parents[1]


def _gaps(rng, shift, n=16):
  a = rng.uniform(0.1, 0.3, n)
  return {"abs": a + shift, "rel": (a + shift) / 0.5}


@pytest.mark.parametrize("method_shift,control_shift,verdict", [
    (0.1, 0.0, "held"), (0.0, 0.0, "not held"), (0.1, 0.1, "uninformative")])
def test_claim_verdicts_on_hand_made_gaps(method_shift, control_shift, verdict):
  rng = np.random.default_rng(0)
  low = {m: _gaps(rng, 0.0) for m in ("original", "a", "b", "c")}
  high = {m: {k: v + (control_shift if m == "original" else method_shift) + rng.normal(0, 0.005, 16)
              for k, v in low[m].items()} for m in low}
  c = check_claim(high, low, z=2.0, min_share=0.5, measure="abs")
  assert c["verdict"] == verdict
  assert c["methods"] == 3 and c["threshold"] == {"z": 2.0, "min_share": 0.5, "min_gap": 0.0}
  # the relative gap never calls the control in
  assert check_claim(high, low, z=2.0, min_share=0.5, measure="rel")["control_passes"] is False
  assert check_claim({"original": high["original"]}, low, z=2.0, min_share=0.5,
                     measure="abs")["verdict"] == "not applicable"
  # nothing to unlearn on the low pool: the relative gap's premise fails
  low["original"]["original_mean_gap"] = 0.01
  assert check_claim(high, low, z=2.0, min_share=0.5, measure="rel",
                     min_gap=0.05)["verdict"] == "not applicable"
  assert check_claim(high, low, z=2.0, min_share=0.5, measure="abs",
                     min_gap=0.05)["verdict"] == verdict


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
  cmd = [sys.executable, "-m", "experiments.shadow_study",
         f"--config={ROOT / 'experiments/configs/shadow_study.py'}:quick",
         "--config.progress=False", f"--workdir={tmp_path}"]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "RUM claim" in out.stdout
  results = json.loads((tmp_path / "results.json").read_text())
  assert set(results["kinds"]) == {"high", "low"}
  pools = results["pool_memorization"]
  assert pools["high"]["min"] >= pools["low"]["max"]  # the pools follow the bank's scores
  assert [c["measure"] for c in results["claims"]] == ["abs", "rel"]
  report = (tmp_path / "report.md").read_text()
  assert "RUM's claim" in report and (tmp_path / "plots" / "memorization.png").exists()
  # a different bank seed equal to the evaluated seed is refused before anything is written
  bad = subprocess.run(cmd[:-1] + ["--config.study.bank_seed=0", f"--workdir={tmp_path}/x"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2 and "config.study.bank_seed" in bad.stderr
  assert not (tmp_path / "x").exists()
