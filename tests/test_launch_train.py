"""End-to-end tests of `python -m experiments.train` (real processes, real files)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.configs import train as train_config
from unlearn_jax import io
from unlearn_jax.pipelines import experiment, reference

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--config=experiments/configs/train.py:dataset=digits,seeds=2,oracle_seeds=2,epochs=4",
         "--config.progress=False"]


def launch(workdir, *args, wait=True):
  cmd = [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *args]
  if not wait:
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  return out


def numbers(summary):
  """Everything in summary.json except wall-clock times."""
  groups = json.loads(json.dumps(summary["groups"]))
  for g in groups.values():
    g["cost"].pop("wall_s")
  return groups


@pytest.mark.slow
def test_default_job_memorises_its_forget_set(tmp_path):
  """The README's default recipe (mnist1d, MLP, 4 seeds) memorises: train accuracy >= 99.5 %,
  test accuracy far below it, and the oracle, which never saw the forget set, >= 4 pp below the
  original on it (the benchmark can tell unlearning from doing nothing).

  The oracle group gets 4 seeds instead of the default 8 (test-time budget; the extra seeds are
  covered by test_oracle_seeds_add_models_without_changing_the_first_ones)."""
  out = launch(tmp_path / "wd", "--config=experiments/configs/train.py:oracle_seeds=4",
               "--config.progress=False")
  summary = io.read_json(tmp_path / "wd" / "summary.json")
  assert summary["dataset"] == "mnist1d" and len(summary["seeds"]) == 4
  assert summary["oracle_seeds"] == [0, 1, 2, 3]
  orig, oracle = summary["groups"]["original"]["splits"], summary["groups"]["oracle"]["splits"]
  n_f, n_r = summary["forget"]["size"], summary["num_train"] - summary["forget"]["size"]
  train_acc = (n_f * orig["forget"]["accuracy"]["mean"]
               + n_r * orig["retain"]["accuracy"]["mean"]) / (n_f + n_r)
  assert train_acc >= 0.995, train_acc
  assert orig["test"]["accuracy"]["mean"] < train_acc - 0.15
  assert oracle["forget"]["accuracy"]["mean"] <= orig["forget"]["accuracy"]["mean"] - 0.04
  for group in ("original", "oracle"):
    log = io.read_jsonl(tmp_path / "wd" / "models" / group / "metrics.jsonl")
    assert [r["epoch"] for r in log] == list(range(1, 41))
  last = out.stdout.strip().splitlines()[-1]
  assert last.startswith("mnist1d/mlp x4 seeds | original: test") and "summary.json" in last


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_numbers(tmp_path):
  launch(tmp_path / "reference", *SMALL)
  reference = io.read_json(tmp_path / "reference" / "summary.json")

  workdir = tmp_path / "killed"
  proc = launch(workdir, *SMALL, wait=False)
  log = workdir / "models" / "oracle" / "metrics.jsonl"
  deadline = time.time() + 600
  while time.time() < deadline and len(io.read_jsonl(log)) < 1 and proc.poll() is None:
    time.sleep(0.2)
  assert proc.poll() is None, "the run finished before it could be killed"
  os.kill(proc.pid, signal.SIGKILL)  # mid-training of the second group
  proc.wait()
  assert not (workdir / "summary.json").exists()

  launch(workdir, *SMALL)
  resumed = io.read_json(workdir / "summary.json")
  assert numbers(resumed) == numbers(reference)

  # Running a finished workdir again recomputes nothing and reports the same numbers.
  mtimes = {p: p.stat().st_mtime for p in (workdir / "models").rglob("*") if p.is_file()}
  launch(workdir, *SMALL)
  assert numbers(io.read_json(workdir / "summary.json")) == numbers(reference)
  assert mtimes == {p: p.stat().st_mtime for p in mtimes}


def test_config_arguments_and_errors():
  config = train_config.get_config("dataset=digits,model=mlp,seeds=2,width=0.5,epochs=3")
  assert (config.data.name, config.model.name, config.seeds) == ("digits", "mlp", (0, 1))
  assert config.model.width == 0.5 and config.train.epochs == 3
  with pytest.raises(ValueError, match="unknown config argument 'datset'"):
    train_config.get_config("datset=digits")
  with pytest.raises(ValueError, match="is not key=value"):
    train_config.get_config("digits")


def test_unknown_dataset_and_model_fail_fast(tmp_path):
  config = train_config.get_config("dataset=digits")
  config.data.name = "no_such_dataset_xyz"
  with pytest.raises(ValueError, match="no_such_dataset_xyz"):
    experiment.setup(config, tmp_path / "a")
  config = train_config.get_config("dataset=digits")
  config.model.name = "resnet1000"
  with pytest.raises(ValueError, match="config.model.name must be one of .*got 'resnet1000'"):
    experiment.setup(config, tmp_path / "b")
  config = train_config.get_config("dataset=digits")
  config.forget.fraction = 1.5
  with pytest.raises(ValueError, match="fraction"):
    experiment.setup(config, tmp_path / "c")
  config = train_config.get_config("dataset=digits")
  config.model.init = "xavier"
  with pytest.raises(ValueError, match="config.model.init must be one of flax, torch, torchvision"):
    experiment.setup(config, tmp_path / "d")
  assert not any((tmp_path / d).exists() for d in "abcd")  # nothing written


def test_model_presets_and_inits():
  config = train_config.get_config("dataset=cifar10")  # DEL's recipe: torchvision ResNet-18
  assert (config.model.name, config.model.width, config.model.init) == ("resnet18", 1.0,
                                                                        "torchvision")
  assert "scale_stem" not in config.model
  config = train_config.get_config("dataset=digits,model=preact_resnet18")
  assert (config.model.width, config.model.scale_stem, config.model.init) == (0.125, True, "flax")


def test_workdir_recorded_before_model_init_is_reused():
  config = train_config.get_config("dataset=digits")
  stored = {s: io.to_jsonable(config.get(s)) for s in experiment.RESULT_SECTIONS}
  del stored["model"]["init"]
  assert experiment.config_differences(config, stored)[0] == []
  stored["model"]["init"] = "torch"
  assert experiment.config_differences(config, stored)[0] == ["model"]


def test_oracle_seeds_add_models_without_changing_the_first_ones(tmp_path):
  """The oracle group has one model per `oracle_seeds`; model i does not depend on how many."""
  params = {}
  for n in (1, 2):
    config = train_config.get_config(f"dataset=digits,model=mlp,seeds=1,oracle_seeds={n},"
                                     "epochs=1")
    config.progress = False
    exp = experiment.setup(config, tmp_path / str(n))
    assert exp.group_seeds("oracle") == tuple(range(n)) and exp.group_seeds("original") == (0,)
    state, _ = reference.train_reference(exp, "oracle")
    params[n] = jax.tree_util.tree_leaves(state.params)
    assert params[n][0].shape[0] == n
  for one, two in zip(params[1], params[2]):
    np.testing.assert_allclose(one[0], two[0], rtol=0, atol=1e-6)
  config = train_config.get_config("dataset=digits,seeds=2")
  config.oracle_seeds = (0, 1, 1)
  with pytest.raises(ValueError, match="oracle_seeds lists a seed twice"):
    experiment.setup(config, tmp_path / "dup")
  # Unset, the oracle seeds follow a --config.seeds override and are recorded resolved.
  config = train_config.get_config("dataset=digits")
  config.seeds = (0, 1, 2, 3, 4)
  exp = experiment.setup(config, tmp_path / "five")
  assert exp.group_seeds("oracle") == tuple(range(10))
  assert io.read_json(tmp_path / "five" / "config.json")["oracle_seeds"] == list(range(10))
  # A workdir with results, recorded before oracle_seeds existed, is refused with the way to
  # reuse it.
  _fake_result(tmp_path / "five")
  stored = io.read_json(tmp_path / "five" / "config.json")
  del stored["oracle_seeds"]
  io.atomic_write_json(tmp_path / "five" / "config.json", stored)
  with pytest.raises(ValueError, match="pass oracle_seeds=5 in the config argument"):
    experiment.setup(train_config.get_config("dataset=digits,seeds=5"), tmp_path / "five")
  exp = experiment.setup(train_config.get_config("dataset=digits,seeds=5,oracle_seeds=5"),
                       tmp_path / "five")
  assert exp.group_seeds("oracle") == tuple(range(5))


def _fake_result(workdir):
  """A computed result in `workdir` (what makes its recorded config binding)."""
  io.append_jsonl(workdir / "models" / "original" / "metrics.jsonl", {"epoch": 1})


def test_workdir_made_with_another_config_is_refused(tmp_path):
  config = train_config.get_config("dataset=digits")
  experiment.setup(config, tmp_path)
  config.train.learning_rate = 0.5
  experiment.setup(config, tmp_path)  # nothing computed yet: the new config replaces the old
  assert io.read_json(tmp_path / "config.json")["train"]["learning_rate"] == 0.5
  _fake_result(tmp_path)
  config.train.learning_rate = 0.1
  with pytest.raises(ValueError, match="different config .*train"):
    experiment.setup(config, tmp_path)


def test_device_choice_does_not_bind_the_workdir(tmp_path):
  """`train.parallelism` picks devices, not models: a workdir with results resumes under another
  choice, also one recorded before the field existed (as `train.data_parallel`)."""
  config = train_config.get_config("dataset=digits")
  experiment.setup(config, tmp_path)
  _fake_result(tmp_path)
  config.train.parallelism = "none"
  experiment.setup(config, tmp_path)
  assert io.read_json(tmp_path / "config.json")["train"]["parallelism"] == "none"
  stored = io.read_json(tmp_path / "config.json")
  del stored["train"]["parallelism"]
  stored["train"]["data_parallel"] = True
  io.atomic_write_json(tmp_path / "config.json", stored)
  experiment.setup(config, tmp_path)


def test_only_process_0_writes_result_files(tmp_path, monkeypatch):
  """Under jax.distributed every host computes the same records; only process 0 writes them."""
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  io.atomic_write_json(tmp_path / "a.json", {"x": 1})
  io.append_jsonl(tmp_path / "log.jsonl", {"epoch": 1})
  assert list(tmp_path.iterdir()) == []
  monkeypatch.setattr(jax, "process_index", lambda: 0)
  io.atomic_write_json(tmp_path / "a.json", {"x": 1})
  assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
