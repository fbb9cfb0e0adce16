"""Shared fixtures: small real data (sklearn digits) so tests run in seconds on 2 CPU cores."""

import numpy as np
import pytest

from unlearn_jax.data import load_dataset


@pytest.fixture(scope="session")
def digits():
  return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_small(digits):
  """First 256 training examples of digits as (x, y)."""
  return digits.train.x[:256], np.asarray(digits.train.y[:256])
