"""Shared fixtures: small real data (sklearn digits) so tests run in seconds on 2 CPU cores."""

import atexit
import os
import shutil
import tempfile

from unlearn_jax import runtime
from unlearn_jax.determinism import configure

# Before any JAX computation: GPU runs must be reproducible, and vmapped seeds must equal separate
# runs (TF32 would break that on GPUs; see unlearn_jax/determinism.py). No effect on CPU numbers.
configure(deterministic=True, matmul_precision="highest")
# One fresh persistent compilation cache per test session, shared with the launcher processes the
# tests start (they inherit the variable): compiling dominates small CPU runs. Never a user's
# cache, so every session compiles everything once.
os.environ[runtime.ENV_DIR] = tempfile.mkdtemp(prefix="unlearn-jax-test-xla-")
atexit.register(shutil.rmtree, os.environ[runtime.ENV_DIR], ignore_errors=True)
runtime.enable_compilation_cache(os.environ[runtime.ENV_DIR])
# This process only reads that cache: three full runs died in XLA:CPU's executable
# serialisation while it wrote an entry (a segfault in `put_executable_and_time`, always in
# tests/test_single_gradient.py, never with that file alone; docs/platform.md). The launcher
# subprocesses still write it.
from jax._src import compilation_cache as _jax_cache  # noqa: E402

_jax_cache.put_executable_and_time = lambda *args, **kwargs: None

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from unlearn_jax.data import load_dataset  # noqa: E402


@pytest.fixture(scope="session")
def digits():
  return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_small(digits):
  """First 256 training examples of digits as (x, y)."""
  return digits.train.x[:256], np.asarray(digits.train.y[:256])
