"""End-to-end tests of `python -m experiments.unlearn` / `experiments.evaluate` and the experiment."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import recipes
from experiments.configs import unlearn as unlearn_config
from unlearn_jax import io
from unlearn_jax.pipelines import experiment, reference, unlearn, validate
from unlearn_jax.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
SMALL = [("--config=experiments/configs/unlearn.py:dataset=digits,model=mlp,seeds=2,"
          "epochs=2,methods=finetune+neggrad_plus"),
         "--config.progress=False", "--config.method_configs.finetune.epochs=1",
         "--config.method_configs.neggrad_plus.epochs=1"]


def launch(module, workdir, *args, check=True):
  cmd = [sys.executable, "-m", module, f"--workdir={workdir}", *args]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
  if check:
    assert out.returncode == 0, out.stderr[-3000:]
  return out


def numbers(results):
  """results.json without wall times (everything else must be reproducible)."""
  r = json.loads(json.dumps(results))
  for g in r["groups"].values():
    for key in ("cost", "cost_relative"):
      if g.get(key):
        g[key].pop("wall_s", None)
  return r


@pytest.mark.slow
def test_unlearn_launcher_reuses_and_evaluate_reproduces(tmp_path):
  wd = tmp_path / "wd"
  out = launch("experiments.unlearn", wd, *SMALL)
  for name in ("report.md", "results.csv", "results.json", "summary.json", "config.json"):
    assert (wd / name).exists(), name
  for png in ("forget_vs_test.png", "mia.png", "confidence_hist.png"):
    assert (wd / "plots" / png).stat().st_size > 1000
  for group in ("original", "oracle", "finetune", "neggrad_plus"):
    with np.load(wd / "eval" / f"{group}.npz") as f:  # the oracle group has 2N seeds
      assert f["test_logits"].shape[0] == (4 if group == "oracle" else 2)
      assert np.isfinite(f["test_logits"]).all()
  results = io.read_json(wd / "results.json")
  assert results["order"] == ["original", "oracle", "finetune", "neggrad_plus"]
  assert set(results["groups"]) == set(results["order"])
  for name in ("finetune", "neggrad_plus"):
    r = io.read_json(wd / "methods" / name / "result.json")
    assert r["status"] == "done" and r["config"]["epochs"] == 1 and r["diverged"] == [False] * 2
    assert results["groups"][name]["status"] == "ok"
    assert results["groups"][name]["cost_relative"]["wall_s"] > 0
  last = out.stdout.strip().splitlines()[-1]
  assert last.startswith("digits/mlp x2 seeds | 2/2 methods ok") and "report.md" in last

  # A second run recomputes nothing: no model file or result.json is rewritten.
  watched = [p for p in (wd / "methods").rglob("*") if p.is_file()]
  watched += [p for p in (wd / "models").rglob("*") if p.is_file()]
  watched += list((wd / "eval").glob("*.npz"))
  mtimes = {p: p.stat().st_mtime_ns for p in watched}
  launch("experiments.unlearn", wd, *SMALL)
  assert mtimes == {p: p.stat().st_mtime_ns for p in mtimes}
  assert numbers(io.read_json(wd / "results.json")) == numbers(results)

  # The evaluator regenerates the same numbers from the saved logits alone.
  for name in ("report.md", "results.csv", "results.json"):
    (wd / name).unlink()
  out = launch("experiments.evaluate", wd)
  assert numbers(io.read_json(wd / "results.json")) == numbers(results)
  assert (wd / "report.md").exists() and (wd / "results.csv").exists()
  assert "2/2 methods ok" in out.stdout


def test_unknown_method_fails_before_training(tmp_path):
  wd = tmp_path / "wd"
  out = launch("experiments.unlearn", wd, "--config=experiments/configs/unlearn.py:"
               "dataset=digits,methods=finetune+forget_everything", check=False)
  assert out.returncode != 0
  assert "unknown unlearning method" in out.stderr and "forget_everything" in out.stderr
  assert not (wd / "models").exists()
  # Programmatic configs are checked too, before anything is trained.
  config = unlearn_config.get_config("dataset=digits,seeds=1,methods=finetune")
  config.methods = ("finetune", "nope")
  with pytest.raises(ValueError, match="unknown unlearning method.*nope"):
    unlearn.run_unlearn(config, wd)
  config = unlearn_config.get_config("dataset=digits,seeds=1,methods=finetune")
  config.method_configs.finetune.epochs_typo = 3
  with pytest.raises(ValueError, match="finetune.*epochs_typo"):
    unlearn.run_unlearn(config, wd)
  assert not (wd / "models").exists()


def test_config_arguments():
  config = unlearn_config.get_config("dataset=digits,seeds=2,methods=ga+finetune")
  assert config.methods == ("ga", "finetune") and config.seeds == (0, 1)
  assert set(config.method_configs) == {"ga", "finetune"}
  assert config.method_configs.finetune.epochs >= 1  # the method's DEFAULTS, overridable
  default = unlearn_config.get_config()
  assert default.data.name == "mnist1d" and default.model.name == "mlp" and len(default.seeds) == 4
  # Unset oracle_seeds = twice the seeds (room for the oracle-vs-oracle FQ ceiling), resolved
  # when the experiment is set up so that --config.seeds overrides carry over.
  assert default.oracle_seeds is None
  assert validate.default_oracle_seeds(default.seeds) == tuple(range(8))
  assert validate.default_oracle_seeds((3, 7)) == (3, 7, 8, 9)
  assert unlearn_config.get_config("seeds=2,oracle_seeds=3").oracle_seeds == (0, 1, 2)
  # Tuned per-dataset values override the module DEFAULTS for that dataset only.
  from unlearn_jax.methods import method_defaults
  mnist5k = unlearn_config.get_config("dataset=mnist5k")
  for name, preset in recipes.METHOD_PRESETS["mnist5k"].items():
    for k, v in preset.items():
      assert mnist5k.method_configs[name][k] == v
  digits = unlearn_config.get_config("dataset=digits")
  assert digits.method_configs.ga.to_dict() == method_defaults("ga")
  # `del` is a Python keyword: the command line reaches it by subscript (as the README says), and
  # a grid can be declared for any hyperparameter of a method.
  from ml_collections.config_flags import config_path
  config_path.set_value('method_configs["del"].alpha', default, 0.1)
  config_path.set_value('tune.space["del"].alpha', default, (0.05, 0.1))
  config_path.set_value("tune.space.ga.epochs", default, (2, 5))
  assert default.method_configs["del"].alpha == 0.1
  assert default.tune.space["del"].alpha == (0.05, 0.1) and default.tune.space.ga.epochs == (2, 5)
  assert set(default.methods) == set(METHODS) - {"retrain"}
  assert unlearn_config.get_config("methods=all").methods == default.methods
  assert default.eval.mia_splits == 5 and default.eval.fq and default.eval.plots
  # `retrain` follows the training recipe unless overridden.
  config = unlearn_config.get_config("dataset=digits,epochs=3,methods=retrain")
  hp = validate.resolve_methods(config)["retrain"]
  assert hp["epochs"] == 3 and hp["learning_rate"] == config.train.learning_rate
  config.method_configs.retrain.epochs = 1
  assert validate.resolve_methods(config)["retrain"]["epochs"] == 1
  with pytest.raises(ValueError, match="unknown unlearning method"):
    unlearn_config.get_config("methods=ga+nope")


def test_method_keys_are_deterministic_and_distinct():
  a = unlearn.method_keys([0, 1, 2], "ga")
  assert a.shape == (3, 2)
  np.testing.assert_array_equal(a, unlearn.method_keys([0, 1, 2], "ga"))
  b = unlearn.method_keys([0, 1, 2], "neggrad")
  keys = {tuple(np.asarray(k).tolist()) for k in (*a, *b)}
  assert len(keys) == 6
  np.testing.assert_array_equal(a[1], unlearn.method_keys([1], "ga")[0])


@pytest.mark.slow
def test_failed_and_diverged_methods_are_recorded_and_rerun(tmp_path, monkeypatch):
  """One method raises, one diverges on a seed; the others still run; a rerun retries the failed
  one and the interrupted one, and reuses the finished ones."""
  config = unlearn_config.get_config("dataset=digits,model=mlp,seeds=2,epochs=1,"
                                     "methods=finetune+ga+neggrad+single_gradient")
  config.progress = False
  config.eval.plots = False
  for m in ("finetune", "ga", "neggrad"):
    config.method_configs[m].epochs = 1
  config.method_configs.single_gradient.reference = "initial"  # w_0 = the original's init
  real = unlearn.run_method

  def flaky(name, state, data, cfg, key, mask=None):
    if name == "ga":
      raise RuntimeError("ga exploded")
    result = real(name, state, data, cfg, key, mask=mask)
    if name == "neggrad":  # seed 1 diverges
      result.state = result.state.replace(params=jax.tree_util.tree_map(
          lambda p: p.at[1].set(jnp.nan), result.state.params))
      result.diverged = np.array([False, True])
    return result

  monkeypatch.setattr(unlearn, "run_method", flaky)
  wd = tmp_path / "wd"
  summary = unlearn.run_unlearn(config, wd)
  ga = io.read_json(wd / "methods" / "ga" / "result.json")
  assert ga["status"] == "failed" and "ga exploded" in ga["error"]
  assert summary["groups"]["ga"]["status"] == "failed"
  assert summary["groups"]["neggrad"]["status"] == "1/2 diverged"
  assert summary["groups"]["finetune"]["status"] == "ok"
  assert summary["groups"]["single_gradient"]["status"] == "ok"
  md = (wd / "report.md").read_text()
  assert "| ga | **FAILED** |" in md and "RuntimeError: ga exploded" in md
  assert "| neggrad | ok (1/2 diverged) |" in md

  # Rerun without the fault: ga is retried; neggrad's result.json is removed (as if killed
  # before it was written), so it reruns; finetune is reused untouched.
  monkeypatch.setattr(unlearn, "run_method", real)
  (wd / "methods" / "neggrad" / "result.json").unlink()
  finetune_mtime = (wd / "methods" / "finetune" / "result.json").stat().st_mtime_ns
  summary = unlearn.run_unlearn(config, wd)
  assert {m: summary["groups"][m]["status"] for m in config.methods} == {
      "finetune": "ok", "ga": "ok", "neggrad": "ok", "single_gradient": "ok"}
  assert (wd / "methods" / "finetune" / "result.json").stat().st_mtime_ns == finetune_mtime

  # Changed hyperparameters rerun that method only.
  config.method_configs.finetune.epochs = 2
  unlearn.run_unlearn(config, wd)
  assert io.read_json(wd / "methods" / "finetune" / "result.json")["config"]["epochs"] == 2
  state = unlearn.load_unlearned(
      wd, "finetune", reference.train_reference(
          experiment.setup(config, wd), "original")[0])
  assert state.params is not None and state.opt_state is None
