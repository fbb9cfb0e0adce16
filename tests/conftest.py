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

import gc  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from unlearn_jax.data import load_dataset  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
  """Drop JAX's in-memory compiled programs after each test module. Every live XLA:CPU
  executable holds its own code mappings; one pytest process of the whole suite reached
  Linux's `vm.max_map_count` (65,530) at ~92 % and the next compile segfaulted
  (docs/platform.md). Later modules reload what they share from the persistent cache."""
  yield
  jax.clear_caches()
  gc.collect()


@pytest.fixture(scope="session")
def digits():
  return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_small(digits):
  """First 256 training examples of digits as (x, y)."""
  return digits.train.x[:256], np.asarray(digits.train.y[:256])
