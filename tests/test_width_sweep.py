"""The width sweep end to end on its quick config: launcher, files, claims, resume; bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.configs import width_sweep as sweep_config
from unlearn_jax import io
from unlearn_jax.pipelines import tune, unlearn, width_sweep

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "--config=experiments/configs/width_sweep.py:quick"


@pytest.mark.slow
def test_quick_sweep_end_to_end_and_resume(tmp_path, monkeypatch):
  out = subprocess.run([sys.executable, "-m", "experiments.width_sweep", CONFIG,
                        f"--workdir={tmp_path}", "--config.progress=False"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  line = out.stdout.strip().splitlines()[-1]
  assert line.startswith("width sweep mlp on digits: widths 0.0625/0.25 x 2 goals x 4 methods")
  assert "claims held" in line and str(tmp_path / "report.md") in line

  results = io.read_json(tmp_path / "results.json")
  assert [(c["width"], c["goal"]) for c in results["cells"]] == [
      (0.0625, "privacy"), (0.0625, "bias"), (0.25, "privacy"), (0.25, "bias")]
  for cell in results["cells"]:
    assert set(cell["methods"]) == {"scrub", "neggrad_plus", "l1_sparse", "finetune"}
    for name, rec in cell["methods"].items():
      assert set(rec["by_lam"]) == {"0.2", "0.4", "0.6"}
      m = rec["by_lam"]["0.4"]
      assert len(m["err_test"]) == 2 and all(0 <= v <= 1 for v in m["err_test"] + m["mia"])
      assert set(m["regions"]) == {"near", "elsewhere", "near_radius"}
      # the selected candidate is the argmin of the recorded tuning rows at that λ
      rows = io.read_jsonl(Path(cell["dir"]) / "tuning" / f"{name}.jsonl")
      j = [r["objective_by_lam"]["0.4"]["objective"] for r in rows]
      assert m["objective"] == min(j) and m["point"] == rows[int(np.argmin(j))]["point"]
    if cell["goal"] == "bias":
      assert "confusion_ab" in cell["references"]["original"]
    # the oracle never changed the labels of the original model by "zero": a real comparison
    assert 0 < np.mean(cell["references"]["oracle"]["regions"]["elsewhere"]) <= 1
  # the wider model has more parameters
  assert results["cells"][2]["num_params"] > results["cells"][0]["num_params"]
  report = (tmp_path / "report.md").read_text()
  assert "## Headline claims" in report and report.count("| held |") + report.count(
      "**not held**") == len(results["claims"]) >= 5
  for goal in ("privacy", "bias"):
    assert (tmp_path / "plots" / f"{goal}_vs_width.png").stat().st_size > 10_000
    assert (tmp_path / "plots" / f"maps_{goal}_w0.25.png").exists()
  assert (tmp_path / "results.csv").read_text().count("\n") == 4 * (2 + 4 * 3) + 1

  # Resume: nothing is trained, tuned or unlearned again.
  def fail(*a, **k):
    raise AssertionError("a finished part of the sweep ran again")
  monkeypatch.setattr(unlearn, "apply_method", fail)
  monkeypatch.setattr(tune, "tune_method", fail)
  config = sweep_config.get_config("quick")
  config.progress = False
  again = width_sweep.run_sweep(config, tmp_path)
  assert again["claims"] == results["claims"]

  # A corrupted file of each kind the sweep keeps is a one-line error naming it.
  from unlearn_jax.errors import WorkdirError
  sweep = Path(results["cells"][0]["dir"]) / "sweep"
  for name, what in (("references.json", "the reference metrics"),
                     ("regions.npz", "region labels"), ("scrub.json", "scrub's tuned results")):
    good = (sweep / name).read_bytes()
    (sweep / name).write_bytes(b"PK\x03\x04 torn" if name.endswith(".npz") else b'{"ora')
    with pytest.raises(WorkdirError, match=f"{name} .*{what}.* is corrupted"):
      width_sweep.run_sweep(config, tmp_path)
    (sweep / name).write_bytes(good)


@pytest.mark.parametrize("args, message", [
    (["--config.sweep.widths=(0.5, -1.0)"], "sweep.widths must be positive"),
    (["--config.sweep.widths=(0.5, 0.5)"], "lists a width twice"),
    (["--config.tune.lam=0.3"], "must be one of tune.lams"),
    (["--config.sweep.regions.resolution=1"], "sweep.regions.resolution"),
    (["--config.tune.space.scrub.alpha=(0.0,)"], "alpha must be > 0"),
    (["--config=experiments/configs/width_sweep.py:quick,widths=0.1,foo=1"],
     "unknown config argument 'foo'"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
  from experiments import width_sweep as launcher
  from experiments.launch import main
  work = tmp_path / "w"
  base = [] if args[0].startswith("--config=") else [CONFIG]
  code = main(["width_sweep", *base, *args, f"--workdir={work}", "--config.progress=False"],
              launcher.job, default_config="experiments/configs/width_sweep.py")
  err = capsys.readouterr().err.strip()
  assert code == 2 and not work.exists()
  assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_configs():
  with pytest.raises(ValueError, match="quick and gpu exclude"):
    sweep_config.get_config("quick,gpu")
  gpu = sweep_config.get_config("gpu")
  assert gpu.data.name == "cifar10" and gpu.model.name == "preact_resnet18"
  assert max(gpu.sweep.widths) == 1.0 and len(gpu.seeds) == 3
  assert sweep_config.get_config("gpu,model=resnet50").model.name == "resnet50"
