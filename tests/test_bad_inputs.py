"""The front door: every bad input exits 2 with one line naming the field, and writes nothing.

The cases and the in-process runner are in `tests/bad_inputs.py` (which also writes the table in
docs/bad_inputs.md); two of them also run as real processes, as a user types them.
"""

import subprocess
import sys

import pytest

import bad_inputs as bi
from unlearn_jax import io


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  return bi.make_workdirs(tmp_path_factory.mktemp("bad-input-base"))


@pytest.fixture(scope="module")
def doc_rows():
  return bi.DOC.read_text()


def test_enough_distinct_cases():
  assert len({c.name for c in bi.CASES}) == len(bi.CASES) >= 30
  # every launcher of experiments/ has cases
  launchers = {p.stem for p in (bi.ROOT / "experiments").glob("*.py")
               if "__main__" in p.read_text()}
  assert len(launchers) >= 11 and {c.launcher for c in bi.CASES} == launchers


@pytest.mark.parametrize("case", bi.CASES, ids=[c.name for c in bi.CASES])
def test_bad_input(case, tmp_path, workdirs, doc_rows):
  r = bi.run_case(case, tmp_path, workdirs)
  lines = r["stderr"].strip().splitlines()
  assert r["rc"] == 2, r["stderr"][-2000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), r["stderr"][-2000:]
  assert case.field in lines[0], lines[0]
  assert ";" in lines[0], f"no fix given: {lines[0]}"
  assert "Traceback" not in r["stderr"] and r["stdout"] == ""
  assert r["unchanged"], "the workdir was changed"
  row = r["message"].replace("|", "\\|")
  assert f"| {row} |" in doc_rows, "docs/bad_inputs.md is stale: run python tests/bad_inputs.py"


def test_table_lists_every_case(doc_rows):
  assert doc_rows.count("\n| ") - 1 == len(bi.CASES)


@pytest.mark.slow
def test_real_process_and_corrected_rerun(tmp_path):
  """As a user runs it: the bad command exits 2 with one line and creates nothing; the corrected
  command in the same workdir then just works."""
  wd = tmp_path / "wd"
  cmd = [sys.executable, "-m", "experiments.train", *bi.TRAIN, f"--workdir={wd}"]
  bad = subprocess.run([*cmd, "--config.train.learning_rate=nan"], cwd=bi.ROOT,
                       capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
  assert bad.stderr.startswith("error: config.train.learning_rate") and not wd.exists()
  good = subprocess.run([*cmd, "--config.train.learning_rate=0.1"], cwd=bi.ROOT,
                        capture_output=True, text=True, timeout=600)
  assert good.returncode == 0, good.stderr[-3000:]
  assert io.read_json(wd / "config.json")["train"]["learning_rate"] == 0.1


def test_internal_errors_keep_their_traceback(tmp_path, monkeypatch, capsys):
  """A bug (not a user error) is not hidden behind a one-line message."""
  from experiments import launch

  def job(config, workdir):
    raise RuntimeError("a bug")

  with pytest.raises(RuntimeError, match="a bug"):
    launch.main(["x", f"--workdir={tmp_path}"], job, default_config=None)


def test_traceback_on_request(tmp_path, monkeypatch, capsys):
  from experiments import launch
  from unlearn_jax.errors import ConfigError

  def job(config, workdir):
    raise ConfigError("config.x is wrong; fix it")

  monkeypatch.setenv(launch.TRACEBACK_ENV, "1")
  assert launch.main(["x", f"--workdir={tmp_path}"], job, default_config=None) == 2
  err = capsys.readouterr().err
  assert "Traceback" in err and err.strip().endswith("error: config.x is wrong; fix it")


def test_divergence_stops_the_reference_group(tmp_path):
  """A NaN loss in reference training stops the run after that epoch with one line naming the
  group, seeds and knob; nothing looks finished; the corrected command then reuses the workdir."""
  wd = tmp_path / "wd"
  args = [*bi.TRAIN, "--config.seeds=0,1", "--config.oracle_seeds=0,1", "--config.train.epochs=3",
          f"--workdir={wd}"]
  rc, out, err = bi.run_launcher("train", [*args, "--config.train.learning_rate=1e15"])
  assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
  assert err.startswith("error: the original group diverged at epoch 1") and "[0, 1]" in err
  assert "--config.train.learning_rate (now 1e+15)" in err
  assert not (wd / "summary.json").exists()
  assert not list((wd / "models").rglob("*")), "a diverged group left files behind"
  rc, out, err = bi.run_launcher("train", [*args, "--config.train.learning_rate=0.1"])
  assert rc == 0, err
  assert io.read_json(wd / "summary.json")["groups"]["oracle"]["splits"]["test"]
