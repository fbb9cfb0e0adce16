"""One launcher per workdir (`unlearn_jax/pipelines/lock.py`): a second process is refused with
the one-line error, a killed run's stale lock is taken over; tested with real processes."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unlearn_jax.errors import WorkdirError
from unlearn_jax.pipelines import lock

ROOT = Path(__file__).resolve().parents[1]
SMALL = "dataset=digits,model=mlp,seeds=1,oracle_seeds=1"

HOLD = textwrap.dedent("""
    import sys
    from unlearn_jax.pipelines.lock import workdir_lock
    with workdir_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()   # until the test closes stdin (or kills us)
""")


@pytest.fixture
def env(tmp_path, monkeypatch):
  monkeypatch.setenv(lock.ENV_DIR, str(tmp_path / "locks"))
  return dict(os.environ, PYTHONPATH=str(ROOT))


def _holder(wd, env):
  p = subprocess.Popen([sys.executable, "-c", HOLD, str(wd)], env=env, stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
  assert p.stdout.readline().strip() == "locked"
  return p




def test_second_process_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path, env, caplog):
  wd = tmp_path / "wd"
  p = _holder(wd, env)
  try:
    info = lock.holder_of(wd)
    assert info["pid"] == p.pid and info["workdir"] == os.path.realpath(wd)
    with pytest.raises(WorkdirError, match=f"is in use by process {p.pid} on "):
      with lock.workdir_lock(wd):
        pass
    # the same workdir through a symlink is the same lock
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    assert lock.lock_path(tmp_path / "link" / "wd") == lock.lock_path(wd)
    # another workdir is free
    with lock.workdir_lock(tmp_path / "other"):
      pass
  finally:
    p.kill()
    p.wait()
  assert lock.lock_path(wd).exists()  # a SIGKILL leaves the file behind, unlocked
  assert lock.holder_of(wd) is None
  with caplog.at_level("WARNING"):
    with lock.workdir_lock(wd) as path:
      with lock.workdir_lock(wd):  # re-entrant in one process
        assert lock.holder_of(wd)["pid"] == os.getpid()
      assert lock.holder_of(wd)["pid"] == os.getpid()
  assert f"took over the stale lock of process {p.pid}" in caplog.text
  assert not path.exists() and lock.holder_of(wd) is None
  assert not wd.exists()  # locking never writes into the workdir


def test_normal_release_leaves_nothing_and_the_next_holder_gets_it(tmp_path, env):
  wd = tmp_path / "wd"
  p = _holder(wd, env)
  p.stdin.close()
  assert p.wait(timeout=60) == 0
  assert not lock.lock_path(wd).exists()
  with lock.workdir_lock(wd):
    assert lock.holder_of(wd)["pid"] == os.getpid()


# A launcher through the real front door (`experiments.launch.main`: config parsing, process
# setup, the lock) whose job blocks until stdin closes, so the test controls when it ends.
BLOCKING_LAUNCHER = textwrap.dedent("""
    import sys
    from experiments import launch

    def job(config, workdir):
        print("running", flush=True)
        sys.stdin.read()
        return "done"

    sys.exit(launch.main(sys.argv, job, default_config="experiments/configs/train.py"))
""")


@pytest.mark.slow
def test_two_launchers_on_one_workdir(tmp_path, env):
  """While a launcher runs on a workdir, `experiments.train` on it exits 2 with one line and
  writes nothing; once the first ends normally, or is killed (SIGKILL: a stale lock), the next
  launcher takes the workdir and runs."""
  wd = tmp_path / "wd"
  config = f"--config={ROOT / 'experiments/configs/train.py'}:{SMALL},epochs=1"
  first = [sys.executable, "-c", BLOCKING_LAUNCHER, config, f"--workdir={wd}"]
  train = [sys.executable, "-m", "experiments.train", config, "--config.progress=False",
           f"--workdir={wd}"]

  def start():
    p = subprocess.Popen(first, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "running", p.communicate()[1][-2000:]
    assert lock.holder_of(wd)["pid"] == p.pid
    return p

  a = start()
  try:
    b = subprocess.run(train, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert a.poll() is None
    assert b.returncode == 2 and b.stdout == "", (b.returncode, b.stderr[-2000:])
    lines = b.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --workdir "), b.stderr[-2000:]
    assert f"is in use by process {a.pid} on " in lines[0] and "another --workdir" in lines[0]
    assert not wd.exists()  # nothing written
  finally:
    out, _ = a.communicate("", timeout=60)  # closes stdin: the first launcher ends normally
  assert a.returncode == 0 and out.strip().endswith("done")
  assert lock.holder_of(wd) is None and not lock.lock_path(wd).exists()

  a = start()
  a.send_signal(signal.SIGKILL)
  a.wait()
  assert lock.holder_of(wd) is None and lock.lock_path(wd).exists()
  c = subprocess.run(train, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert c.returncode == 0, c.stderr[-3000:]
  assert f"took over the stale lock of process {a.pid}" in c.stderr
  assert not lock.lock_path(wd).exists() and (wd / "models" / "original").is_dir()
