"""One process per workdir: a second launcher on a workdir that is in use is refused.

Two launchers writing one workdir would interleave checkpoints, logits and reports. Every
launcher therefore holds an exclusive `flock` on a lock file for its workdir while it runs
(`experiments/launch.py`); a second process gets the one-line `WorkdirError` naming the holder
(pid, host, start time) and exits with status 2, having written nothing.

The lock file lives outside the workdir, in `$UNLEARN_JAX_LOCK_DIR` (default
`<tmp>/unlearn-jax-locks-<uid>/`), named by a hash of the workdir's real path: a refused or
invalid run leaves the workdir untouched, and a path whose parents do not exist yet can be
locked too. The kernel drops a `flock` when its process dies, so the lock of a killed run
(SIGKILL, OOM) is stale by construction: the next launcher takes it over and says so on
stderr. Scope: processes of one machine (a lock directory on a local disk); in a multi-host
`jax.distributed` run only process 0, the one that writes, takes it. Re-entrant within one
process (a notebook may call the pipelines again on the same workdir).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

from absl import logging

from unlearn_jax.errors import WorkdirError

ENV_DIR = "UNLEARN_JAX_LOCK_DIR"
_HELD: dict[str, list] = {}  # lock path -> [fd, depth]


def lock_dir() -> Path:
  return Path(os.environ.get(ENV_DIR) or
              os.path.join(tempfile.gettempdir(), f"unlearn-jax-locks-{os.getuid()}"))


def lock_path(workdir) -> Path:
  """The lock file of `workdir` (by its real path: symlinks and `..` name the same lock)."""
  real = os.path.realpath(os.path.abspath(os.path.expanduser(str(workdir))))
  return lock_dir() / f"{hashlib.sha256(real.encode()).hexdigest()[:24]}.lock"


def _read(fd: int) -> Optional[dict]:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    return json.loads(os.read(fd, 1 << 16).decode() or "null")
  except (ValueError, OSError):
    return None


def _holder(info: Optional[dict]) -> str:
  if not info:
    return "another process"
  started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
  return f"process {info.get('pid')} on {info.get('host')} (started {started})"


def _acquire(path: Path, workdir) -> tuple[int, Optional[dict]]:
  """Lock `path` (non-blocking); (fd, what a dead earlier holder left in it, if anything)."""
  path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      info = _read(fd)
      os.close(fd)
      raise WorkdirError(f"--workdir {workdir} is in use by {_holder(info)}; wait for it to "
                         "finish or pass another --workdir") from None
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:  # else the holder removed the file between our open and flock: try again
      return fd, _read(fd)
    os.close(fd)


@contextlib.contextmanager
def workdir_lock(workdir, *, enabled: bool = True) -> Iterator[Optional[Path]]:
  """Hold the lock of `workdir` for the `with` block (a no-op if not `enabled`); raises a
  `WorkdirError` if another live process holds it."""
  if not enabled:
    yield None
    return
  path = lock_path(workdir)
  key = str(path)
  if key in _HELD:
    _HELD[key][1] += 1
  else:
    fd, stale = _acquire(path, workdir)
    if stale and stale.get("pid") != os.getpid():
      logging.warning("took over the stale lock of %s on --workdir %s (that process is gone)",
                      _holder(stale), workdir)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "workdir": os.path.realpath(os.path.abspath(str(workdir)))}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(info).encode())
    os.fsync(fd)
    _HELD[key] = [fd, 1]
  try:
    yield path
  finally:
    _HELD[key][1] -= 1
    if _HELD[key][1] == 0:
      fd = _HELD.pop(key)[0]
      with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # while still holding it: a waiting process then retries (inode check)
      os.close(fd)


def holder_of(workdir) -> Optional[dict]:
  """What the current holder of `workdir`'s lock wrote (pid, host, started, workdir), or None if
  nobody holds it."""
  path = lock_path(workdir)
  if not path.exists():
    return None
  fd = os.open(path, os.O_RDONLY)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
      return _read(fd)
    fcntl.flock(fd, fcntl.LOCK_UN)
    return None
  finally:
    os.close(fd)
