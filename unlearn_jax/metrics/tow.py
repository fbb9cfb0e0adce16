"""Tug of War (ToW): one number for how close a method's accuracies are to the retrain oracle.

Reference: K. Zhao, M. Kurmanji, G.-O. Bărbulescu, E. Triantafillou, P. Triantafillou, "What makes
unlearning hard and what to do about it", NeurIPS 2024 (arXiv:2406.01257), ``50-metrics.md`` §4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["TOW_SPLITS", "tug_of_war"]

TOW_SPLITS = ("forget", "retain", "test")
"""The splits whose accuracies enter ToW."""


def _accuracy(name: str, split: str, accuracies: Mapping[str, Any]) -> float:
  if split not in accuracies:
    raise ValueError(f"{name} is missing the {split!r} accuracy (needs {TOW_SPLITS})")
  try:
    value = float(accuracies[split])
  except (TypeError, ValueError):
    raise ValueError(f"{name}[{split!r}] = {accuracies[split]!r} is not a number") from None
  if not (0.0 <= value <= 1.0):  # also rejects NaN.
    raise ValueError(f"{name}[{split!r}] = {value} is not an accuracy in [0, 1]")
  return value


def tug_of_war(method_acc: Mapping[str, Any], oracle_acc: Mapping[str, Any]) -> float:
  """ToW = Π_{s ∈ {forget, retain, test}} (1 − |acc_s(method) − acc_s(oracle)|).

  1 means the method matches the retrained model's accuracy on all three splits; every
  percentage point of gap on any split pulls it down (Zhao et al. 2024). Accuracies are fractions
  in ``[0, 1]``, not percentages.

  Args:
    method_acc: ``{"forget": a_f, "retain": a_r, "test": a_t}`` of the unlearned model (extra keys
      are ignored).
    oracle_acc: the same for the retrain oracle.

  Returns:
    ToW in ``[0, 1]``.

  Raises:
    ValueError: if a split is missing or an accuracy lies outside ``[0, 1]``.
  """
  return math.prod(
    1.0 - abs(_accuracy("method_acc", s, method_acc) - _accuracy("oracle_acc", s, oracle_acc))
    for s in TOW_SPLITS
  )
