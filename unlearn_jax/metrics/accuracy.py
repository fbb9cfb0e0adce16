"""Accuracy, error and loss of a split, and their comparison with the retrain oracle.

Definitions follow ``50-metrics.md`` §1 and §7: accuracy/error/mean cross-entropy of a split
(forget, retain, validation, test), ``Δ_x = oracle_x − method_x`` against the model retrained from
scratch without the forget set (the exact-unlearning oracle used throughout the unlearning
literature, e.g. Kurmanji et al. 2023 "Towards Unbounded Machine Unlearning" (SCRUB), Fan et al.
2024 "SalUn"), mean ± std over seeds, and cost relative to retraining.

All functions take plain NumPy or JAX arrays and return Python floats (or dicts of them); they run
in ``float64`` on the host.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
  "softmax_cross_entropy_per_example",
  "split_metrics",
  "delta_to_oracle",
  "mean_std",
  "cost_relative",
]


def _logits_labels(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
  z = np.asarray(logits, dtype=np.float64)
  y = np.asarray(labels)
  if z.ndim != 2:
    raise ValueError(f"logits must be [n, C], got shape {z.shape}")
  if y.ndim != 1 or y.shape[0] != z.shape[0]:
    raise ValueError(f"labels must be [n] with n = {z.shape[0]}, got shape {y.shape}")
  if z.shape[0] == 0:
    raise ValueError("empty split: no examples")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {y.dtype}")
  if y.min() < 0 or y.max() >= z.shape[1]:
    raise ValueError(f"labels must lie in [0, {z.shape[1]}), got [{y.min()}, {y.max()}]")
  return z, y


def softmax_cross_entropy_per_example(logits: Any, labels: Any) -> np.ndarray:
  """Per-example softmax cross-entropy ``-log softmax(z)_y = logsumexp(z) - z_y``.

  Computed stably (max-shifted log-sum-exp) in ``float64``; the per-example loss is the
  membership-inference feature of the NeurIPS 2023 unlearning challenge starting kit
  (``compute_losses``, github.com/unlearning-challenge/starting-kit) and of SCRUB's MIA.

  Args:
    logits: ``[n, C]`` unnormalized log-probabilities.
    labels: ``[n]`` integer labels in ``[0, C)``.

  Returns:
    ``[n]`` ``float64`` array of losses (nats).

  Raises:
    ValueError: on empty input, mismatched shapes or out-of-range labels.
  """
  z, y = _logits_labels(logits, labels)
  peak = z.max(axis=1, keepdims=True)
  lse = peak[:, 0] + np.log(np.exp(z - peak).sum(axis=1))
  return lse - z[np.arange(z.shape[0]), y]


def split_metrics(logits: Any, labels: Any) -> dict[str, float]:
  """Accuracy, error and mean cross-entropy loss of one model on one split.

  ``accuracy = mean(argmax_c z_c == y)`` (ties go to the lowest class index, as
  :func:`numpy.argmax`), ``error = 1 − accuracy``, ``loss = mean`` of
  :func:`softmax_cross_entropy_per_example` (``50-metrics.md`` §1).

  Args:
    logits: ``[n, C]`` logits of the split.
    labels: ``[n]`` integer labels.

  Returns:
    ``{"accuracy": float, "error": float, "loss": float}``.
  """
  z, y = _logits_labels(logits, labels)
  accuracy = float(np.mean(np.argmax(z, axis=1) == y))
  return {
    "accuracy": accuracy,
    "error": 1.0 - accuracy,
    "loss": float(np.mean(softmax_cross_entropy_per_example(z, y))),
  }


def _is_number(value: Any) -> bool:
  """True for real scalars (Python, NumPy or JAX), False for bools, strings, arrays, None."""
  if isinstance(value, bool | np.bool_):
    return False
  if isinstance(value, numbers.Real):
    return True
  try:
    a = np.asarray(value)
  except Exception:  # noqa: BLE001 - anything NumPy cannot convert is not a number.
    return False
  is_real = np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
  return a.ndim == 0 and is_real


def delta_to_oracle(method: Mapping[str, Any], oracle: Mapping[str, Any]) -> dict[str, float]:
  """Difference to the retrain oracle, ``Δ_x = oracle_x − method_x``, for every shared number.

  Smaller ``|Δ|`` is better: the ideal unlearning method is indistinguishable from retraining
  without the forget set (``50-metrics.md`` §1; the "gap to retrain" reported by e.g. SalUn,
  Fan et al. 2024, and Alon & Dar 2025). Keys present in only one dict, and non-numeric or boolean
  values, are skipped.

  Args:
    method: metrics of the unlearning method, e.g. ``{"forget_accuracy": 0.91, ...}``.
    oracle: metrics of the retrained model with the same keys.

  Returns:
    ``{key: oracle[key] − method[key]}`` (floats) for the shared numeric keys, in ``method``'s
    key order.
  """
  return {
    key: float(oracle[key]) - float(method[key])
    for key in method
    if key in oracle and _is_number(method[key]) and _is_number(oracle[key])
  }


def mean_std(values: Iterable[float] | Any, *, ddof: int = 0) -> tuple[float, float]:
  """Mean and standard deviation of a metric over seeds, ignoring NaNs.

  The default is the population standard deviation (``ddof=0``, NumPy's default), which stays
  defined for a single seed; pass ``ddof=1`` for the sample standard deviation. With exactly one
  non-NaN value the std is 0 whatever ``ddof``; with none, both are NaN.

  Args:
    values: the metric for each seed (any iterable or array of numbers).
    ddof: delta degrees of freedom of the std (``0`` or ``1``).

  Returns:
    ``(mean, std)`` as Python floats.
  """
  if not (hasattr(values, "__array__") or isinstance(values, list | tuple)):
    values = list(values)  # generators and other iterables.
  a = np.asarray(values, dtype=np.float64).reshape(-1)
  a = a[~np.isnan(a)]
  if a.size == 0:
    return math.nan, math.nan
  if a.size == 1:
    return float(a[0]), 0.0
  return float(a.mean()), float(a.std(ddof=ddof))


def cost_relative(cost: float, retrain_cost: float) -> float:
  """Cost of an unlearning method as a fraction of the cost of retraining from scratch.

  ``cost / retrain_cost`` for any cost measure (wall time, gradient evaluations, epochs;
  ``50-metrics.md`` §7). Below 1 means cheaper than the retrain oracle.

  Args:
    cost: the method's cost (>= 0).
    retrain_cost: the same measure for retraining (> 0).

  Returns:
    The ratio as a float.

  Raises:
    ValueError: if ``cost < 0`` or ``retrain_cost <= 0`` (or either is not finite).
  """
  cost, retrain_cost = float(cost), float(retrain_cost)
  if not math.isfinite(cost) or cost < 0:
    raise ValueError(f"cost must be finite and >= 0, got {cost}")
  if not math.isfinite(retrain_cost) or retrain_cost <= 0:
    raise ValueError(f"retrain_cost must be finite and > 0, got {retrain_cost}")
  return cost / retrain_cost
