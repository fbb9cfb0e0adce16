"""Accuracy/loss, Δ to the oracle, mean ± std, relative cost and ToW, against hand computations."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax import metrics


def _direct_softmax_ce(logits, labels):
  # Textbook definition, no shifting: fine for the moderate logits used here.
  probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  return -np.log(probs[np.arange(len(labels)), labels])


def test_cross_entropy_matches_direct_computation():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 7)) * 3
  labels = rng.integers(0, 7, size=50)
  np.testing.assert_allclose(
    metrics.softmax_cross_entropy_per_example(logits, labels),
    _direct_softmax_ce(logits, labels),
    rtol=1e-12,
  )


def test_cross_entropy_is_stable_for_huge_logits():
  logits = np.array([[1000.0, 0.0], [0.0, 1000.0]])
  losses = metrics.softmax_cross_entropy_per_example(logits, np.array([0, 0]))
  # log(1 + e^-1000) ~ 0 and 1000 + log(1 + e^-1000) ~ 1000.
  np.testing.assert_allclose(losses, [0.0, 1000.0], atol=1e-12)


def test_split_metrics_by_hand_and_with_jax_inputs():
  logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
  labels = np.array([0, 1, 0, 2])  # predictions 0, 1, 2, 0 -> 2 of 4 right.
  out = metrics.split_metrics(jnp.asarray(logits), jnp.asarray(labels))
  assert out["accuracy"] == 0.5
  assert out["error"] == 0.5
  assert out["loss"] == pytest.approx(_direct_softmax_ce(logits, labels).mean(), rel=1e-6)
  assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize(
  "logits, labels",
  [
    (np.zeros((0, 3)), np.zeros(0, int)),  # empty.
    (np.zeros((3, 3)), np.zeros(2, int)),  # mismatched lengths.
    (np.zeros((3, 3)), np.array([0, 1, 3])),  # label out of range.
    (np.zeros(3), np.zeros(3, int)),  # not [n, C].
  ],
)
def test_split_metrics_rejects_bad_inputs(logits, labels):
  with pytest.raises(ValueError):
    metrics.split_metrics(logits, labels)


def test_delta_to_oracle_by_hand():
  method = {"forget_accuracy": 0.9, "test_accuracy": 0.80, "loss": 1.5, "name": "ft", "ok": True}
  oracle = {
    "forget_accuracy": 0.7,
    "test_accuracy": 0.85,
    "loss": 1.0,
    "name": "rt",
    "ok": True,
    "only_oracle": 3.0,
  }
  delta = metrics.delta_to_oracle(method, oracle)
  assert set(delta) == {"forget_accuracy", "test_accuracy", "loss"}
  assert delta["forget_accuracy"] == pytest.approx(0.7 - 0.9)
  assert delta["test_accuracy"] == pytest.approx(0.85 - 0.80)
  assert delta["loss"] == pytest.approx(-0.5)


def test_delta_to_oracle_accepts_numpy_and_jax_scalars():
  delta = metrics.delta_to_oracle(
    {"a": np.float32(0.25), "b": jnp.float32(1.0)}, {"a": 0.5, "b": np.int64(3)}
  )
  assert delta == pytest.approx({"a": 0.25, "b": 2.0})


def test_mean_std():
  assert metrics.mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(1.25)))
  assert metrics.mean_std([1.0, 2.0, 3.0, 4.0], ddof=1) == pytest.approx(
    (2.5, math.sqrt(5.0 / 3.0))
  )
  assert metrics.mean_std([0.7]) == (0.7, 0.0)
  assert metrics.mean_std([0.7], ddof=1) == (0.7, 0.0)
  assert metrics.mean_std([1.0, float("nan"), 3.0]) == pytest.approx((2.0, 1.0))
  assert metrics.mean_std(x for x in (2.0, 4.0)) == pytest.approx((3.0, 1.0))
  mean, std = metrics.mean_std([float("nan")])
  assert math.isnan(mean) and math.isnan(std)


def test_cost_relative():
  assert metrics.cost_relative(30.0, 120.0) == 0.25
  with pytest.raises(ValueError):
    metrics.cost_relative(1.0, 0.0)
  with pytest.raises(ValueError):
    metrics.cost_relative(-1.0, 2.0)


def test_tug_of_war_by_hand():
  method = {"forget": 0.90, "retain": 0.95, "test": 0.80}
  oracle = {"forget": 0.80, "retain": 0.99, "test": 0.82, "val": 0.5}
  # (1 - 0.10) * (1 - 0.04) * (1 - 0.02) = 0.9 * 0.96 * 0.98 = 0.84672
  assert metrics.tug_of_war(method, oracle) == pytest.approx(0.84672)
  assert metrics.tug_of_war(oracle, oracle) == 1.0
  assert metrics.tug_of_war(method, oracle) == pytest.approx(metrics.tug_of_war(oracle, method))


@pytest.mark.parametrize(
  "method",
  [
    {"forget": 0.9, "retain": 0.95},  # missing test.
    {"forget": 90.0, "retain": 0.95, "test": 0.8},  # a percentage, not a fraction.
    {"forget": -0.1, "retain": 0.95, "test": 0.8},
    {"forget": float("nan"), "retain": 0.95, "test": 0.8},
  ],
)
def test_tug_of_war_errors(method):
  oracle = {"forget": 0.8, "retain": 0.99, "test": 0.82}
  with pytest.raises(ValueError):
    metrics.tug_of_war(method, oracle)
  with pytest.raises(ValueError):
    metrics.tug_of_war(oracle, method)
