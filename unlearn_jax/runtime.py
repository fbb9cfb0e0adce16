"""Process-wide JAX settings of a launcher: reproducibility options and the compilation cache.

Persistent compilation cache: XLA compiles every jitted program when a process first runs it, and
on a small CPU job compiling dominates: the 2-seed digits training launcher took 69 s in a fresh
process and 17 s with the programs of an earlier process in the cache (docs/platform.md). The
launchers therefore keep JAX's persistent cache in `config.compilation_cache` (default
`$JAX_COMPILATION_CACHE_DIR`, else `~/.cache/unlearn-jax/xla`; empty disables it), so a rerun,
a resumed run or a second experiment with the same shapes starts in seconds. Entries are keyed by
the program, the JAX/XLA version and the devices, so a cached program computes the same numbers
as a fresh compile.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Optional

from unlearn_jax import determinism

ENV_DIR = "JAX_COMPILATION_CACHE_DIR"


def default_cache_dir() -> str:
  """`$JAX_COMPILATION_CACHE_DIR` if set, else `~/.cache/unlearn-jax/xla`."""
  return os.environ.get(ENV_DIR) or str(Path("~/.cache/unlearn-jax/xla").expanduser())


def enable_compilation_cache(directory: Optional[str], min_compile_time_s: float = 0.0
                             ) -> Optional[Path]:
  """Use `directory` as JAX's persistent compilation cache (None or "" leaves JAX as it is).

  Every program is cached (`min_compile_time_s=0`: most programs of small CPU jobs compile in
  under JAX's default threshold of 1 s, yet together they dominate the run time).
  """
  if not directory:
    return None
  import jax

  path = Path(directory).expanduser().absolute()
  path.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def configure_from_config(config: Any) -> None:
  """A launcher's process setup from its config (a ConfigDict or dict): deterministic GPU ops,
  float32 matmul precision (`unlearn_jax.determinism`), the compilation cache and, if
  `distributed` is True, `jax.distributed.initialize()`. Call before computing."""
  determinism.configure(deterministic=config.get("deterministic", True),
                        matmul_precision=config.get("matmul_precision", "highest"))
  enable_compilation_cache(config.get("compilation_cache"))
  if config.get("distributed", False):
    import jax

    # Every host runs the same command; jax.devices() then spans all hosts.
    jax.distributed.initialize(**distributed_args())


def distributed_args(environ=os.environ) -> dict:
  """`jax.distributed.initialize` arguments from `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`, for a
  launch by hand (JAX reads `JAX_COORDINATOR_ADDRESS`, host:port of process 0, itself; under
  Slurm, Open MPI, Kubernetes or on Cloud TPU JAX detects all three without them)."""
  names = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
  return {key: int(environ[var]) for key, var in names.items() if environ.get(var)}


@contextlib.contextmanager
def quiet_absl_logging(level: Optional[int] = None):
  """Raise absl's logging threshold (default ERROR + 1, i.e. silence) inside the block: for
  library calls that log what the one-line error raised afterwards says better (TFDS's
  "Variant folder ... has no dataset_info.json", orbax's "Failed to json parse ...")."""
  from absl import logging

  before = logging.get_verbosity()
  logging.set_verbosity(logging.FATAL if level is None else level)
  try:
    yield
  finally:
    logging.set_verbosity(before)
