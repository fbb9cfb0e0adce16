"""Result files: atomic JSON/text writes and per-epoch JSONL logs.

Every write goes to a temporary file in the destination folder and is moved into place with
`os.replace`, so a reader (or a resumed run) never sees a half-written file. When several
processes run one program (`jax.distributed`, one per host, sharing the workdir), only process 0
moves its files into place: every process computes the same records, one writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np


def to_jsonable(value: Any) -> Any:
  """Convert numpy/JAX scalars and arrays, tuples, dataclasses and paths to JSON types."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return to_jsonable(dataclasses.asdict(value))
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, Path):
    return str(value)
  if hasattr(value, "to_dict"):  # ml_collections.ConfigDict
    return to_jsonable(value.to_dict())
  if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy or jax array / scalar
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()
  if isinstance(value, float) and not np.isfinite(value):
    return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
  return value


@contextlib.contextmanager
def atomic_open(path, mode: str = "w"):
  """Open a temporary file beside `path`; on success fsync it and move it onto `path`.

  On any exception the temporary file is removed and `path` is left as it was. In a process
  other than JAX's process 0 the temporary file is always removed (`writes_files`).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    if writes_files():
      os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def writes_files() -> bool:
  """True unless this is one of several JAX processes and not process 0."""
  jax = sys.modules.get("jax")
  return jax is None or jax.process_index() == 0


def atomic_write_text(path, text: str) -> None:
  with atomic_open(path, "w") as f:
    f.write(text)


def atomic_savez(path, **arrays) -> None:
  """`np.savez` to `path` atomically."""
  with atomic_open(path, "wb") as f:
    np.savez(f, **arrays)


def atomic_write_json(path, obj: Any) -> None:
  atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def json_key(obj: Any) -> str:
  """A canonical JSON string of `obj` (sorted keys), to compare configs by value."""
  return json.dumps(to_jsonable(obj), sort_keys=True)


def read_json(path) -> Any:
  with open(path) as f:
    return json.load(f)


def read_jsonl(path) -> list[dict]:
  """Records of a JSONL file; a torn last line (from a kill mid-append) is ignored."""
  path = Path(path)
  if not path.exists():
    return []
  records = []
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      break
  return records


def write_jsonl(path, records: Iterable[dict]) -> None:
  atomic_write_text(path, "".join(json.dumps(to_jsonable(r), sort_keys=True) + "\n"
                                  for r in records))


def append_jsonl(path, record: dict) -> None:
  """Append one record (rewrites the file atomically; logs here are small)."""
  write_jsonl(path, read_jsonl(path) + [record])


def keep_jsonl(path, keep: Callable[[dict], bool]) -> None:
  """Drop the records for which `keep` is False (e.g. epochs after the restored checkpoint)."""
  if not Path(path).exists():
    return
  lines = Path(path).read_text().splitlines()
  records = read_jsonl(path)
  kept = [r for r in records if keep(r)]
  if len(kept) != len(lines):  # something to drop (or a torn last line): rewrite
    write_jsonl(path, kept)
