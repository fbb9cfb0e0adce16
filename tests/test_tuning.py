"""Validation-based tuning: objectives by hand, grids, selection, and the sweep on a workdir."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.configs import unlearn as unlearn_config
from unlearn_jax import io, tuning
from unlearn_jax.pipelines import experiment, reference, tune, unlearn
from unlearn_jax.methods import run_method

ROOT = Path(__file__).resolve().parents[1]


def test_objectives_by_hand():
  # privacy: (1 - 0.4) * 0.1 + 0.4 * |0.3 - 0.1| = 0.06 + 0.08
  assert tuning.privacy_objective(0.1, 0.3, 0.4) == pytest.approx(0.14)
  assert tuning.privacy_objective(0.2, 0.05, 0.6) == pytest.approx(0.4 * 0.2 + 0.6 * 0.15)
  # bias: (1 - 0.2) * 0.1 - 0.2 * 0.9
  assert tuning.bias_objective(0.1, 0.9, 0.2) == pytest.approx(0.08 - 0.18)
  np.testing.assert_allclose(tuning.objective("privacy", [0.1, 0.2], [0.1, 0.0], 0.5),
                             [0.05, 0.2])
  with pytest.raises(ValueError, match="unknown tuning goal 'speed'"):
    tuning.objective("speed", 0.1, 0.1, 0.4)
  with pytest.raises(ValueError, match=r"λ must be in \[0, 1\]"):
    tuning.privacy_objective(0.1, 0.1, 1.5)


def test_grid_order_and_errors():
  assert tuning.grid({"lr": (0.1, 0.2), "epochs": (1, 2)}) == [
      {"lr": 0.1, "epochs": 1}, {"lr": 0.1, "epochs": 2},
      {"lr": 0.2, "epochs": 1}, {"lr": 0.2, "epochs": 2}]
  assert tuning.grid({"lr": 0.1}) == [{"lr": 0.1}]
  with pytest.raises(ValueError, match="'lr' is empty"):
    tuning.grid({"lr": ()})
  with pytest.raises(ValueError, match="'lr' lists a value twice"):
    tuning.grid({"lr": (0.1, 0.1)})


def test_select_and_divergence():
  rows = [{"objective": 0.3}, {"objective": 0.1}, {"objective": 0.1}, {"objective": math.nan},
          {"objective": None}, {"objective": "inf"}]
  assert tuning.select(rows) is rows[1]  # ties: the first
  assert tuning.select([{"objective": "inf"}, {"objective": 2.0}])["objective"] == 2.0
  c = tuning.candidate_objective("privacy", [0.1, 0.1], [0.1, 0.3], [False, True], 0.4)
  assert c["objective_per_seed"][0] == pytest.approx(0.06) and math.isinf(c["objective"])
  with pytest.raises(ValueError, match="no tuning candidates"):
    tuning.select([])


def _config(space):
  config = unlearn_config.get_config("dataset=digits,model=mlp,seeds=2,oracle_seeds=2,epochs=2,"
                                     "methods=ga")
  config.progress = False
  config.method_configs.ga.epochs = 1
  config.tune.space.ga = space
  return config


@pytest.mark.slow
def test_tune_picks_the_argmin_and_resumes(tmp_path, monkeypatch):
  config = _config({"learning_rate": (0.001, 0.2)})
  unlearn_run = _config({"learning_rate": (0.001,)})  # as if experiments.unlearn ran here first
  unlearn_run.methods = ("finetune", "ga")
  experiment.setup(unlearn_run, tmp_path)
  out = tune.run_tune(config, tmp_path)["ga"]
  assert io.read_json(tmp_path / "config.json")["methods"] == ["finetune", "ga"]  # kept
  rows = io.read_jsonl(tmp_path / "tuning" / "ga.jsonl")
  assert [r["point"] for r in rows] == [{"learning_rate": 0.001}, {"learning_rate": 0.2}]
  by_hand = [np.mean([0.6 * v + 0.4 * abs(f - v) if not d else np.inf
                      for v, f, d in zip(r["err_validation"], r["err_forget"], r["diverged"])])
             for r in rows]
  assert [r["objective"] for r in rows] == pytest.approx(by_hand)
  best = io.read_json(tmp_path / "tuning" / "ga_best.json")
  assert best["best"]["point"] == rows[int(np.argmin(by_hand))]["point"]
  assert best["num_candidates"] == 2 and best["goal"] == "privacy" and best["lam"] == 0.4
  assert out["best"]["point"] == best["best"]["point"]
  assert "*" in tune.format_table("ga", out)

  # The recorded errors are those of the method run on its own with the same keys.
  exp = experiment.setup(config, tmp_path)
  original, _ = reference.train_reference(exp, "original")
  hp = dict(rows[0]["config"])
  result = run_method("ga", original, unlearn.unlearn_data(exp), hp,
                      unlearn.method_keys(exp.seeds, "ga"))
  acc = experiment.evaluate_splits(result.state, {"validation": exp.splits()["validation"]})
  np.testing.assert_allclose(rows[0]["err_validation"],
                             [1 - a for a in acc["validation"]["accuracy"]], atol=1e-6)

  # A rerun computes nothing new; a widened grid runs only the new point.
  def fail(*args, **kwargs):
    raise AssertionError("a finished candidate was run again")
  monkeypatch.setattr(unlearn, "apply_method", fail)
  tune.run_tune(config, tmp_path)
  assert len(io.read_jsonl(tmp_path / "tuning" / "ga.jsonl")) == 2
  # A new dimension whose only value is the one already used reruns nothing either.
  out = tune.run_tune(_config({"epochs": (1,), "learning_rate": (0.001, 0.2)}),
                               tmp_path)["ga"]
  assert [r["point"] for r in out["rows"]] == [{"epochs": 1, "learning_rate": 0.001},
                                               {"epochs": 1, "learning_rate": 0.2}]
  assert "epochs" in tune.format_table("ga", out).splitlines()[0]
  monkeypatch.undo()

  # The launcher on the same workdir: everything reused, the table printed.
  out = subprocess.run(
      [sys.executable, "-m", "experiments.tune", f"--workdir={tmp_path}",
       "--config=experiments/configs/unlearn.py:dataset=digits,model=mlp,seeds=2,oracle_seeds=2,"
       "epochs=2,methods=ga", "--config.progress=False", "--config.method_configs.ga.epochs=1",
       "--config.tune.space.ga.learning_rate=(0.001, 0.2)"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.startswith("goal privacy, λ = 0.4") and "*" in out.stdout
  assert len(io.read_jsonl(tmp_path / "tuning" / "ga.jsonl")) == 2

  tune.run_tune(_config({"learning_rate": (0.001, 0.2, 0.01)}), tmp_path)
  assert len(io.read_jsonl(tmp_path / "tuning" / "ga.jsonl")) == 3


def test_space_errors(tmp_path):
  config = _config({"learning_rat": (0.1,)})
  with pytest.raises(ValueError, match="unknown hyperparameter.*learning_rat"):
    tune.run_tune(config, tmp_path)
  config = unlearn_config.get_config("dataset=digits,methods=l1_sparse")
  with pytest.raises(ValueError, match="no tuning space for method 'l1_sparse'"):
    tune.run_tune(config, tmp_path)
  config = _config({"learning_rate": (0.1,)})
  config.tune.goal = "speed"
  with pytest.raises(ValueError, match="tune.goal must be one of privacy, bias"):
    tune.run_tune(config, tmp_path)
  assert not (tmp_path / "models").exists()
