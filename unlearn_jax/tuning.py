"""Validation-based hyperparameter selection (`30-overparam.md` §5): objectives, grids, the pick.

Alon & Dar choose each method's hyperparameters per width and per goal on a held-out validation
split (never the test set) by minimizing, for a trade-off λ (the paper shows 0.2, 0.4, 0.6):

  privacy        J = (1 − λ) · err_val + λ · |err_forget − err_val|
  bias removal   J = (1 − λ) · err_val − λ · err_forget      (err_forget under the given labels)

(both marked (R) in the spec: reconstructed). Privacy asks the forget examples to look like unseen
data (forget error close to validation error) while keeping the model accurate; bias removal asks
the model to stop fitting the (mislabeled) forget labels. Neither needs the retrain oracle.

A search space is a mapping `name -> list of values`; `grid` enumerates its Cartesian product in
a fixed order, and `select` returns the candidate with the smallest mean objective over seeds
(ties: the first in grid order; a diverged seed scores +inf, so a candidate that diverged on any
seed loses to every one that did not).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

GOALS = ("privacy", "bias")


def privacy_objective(err_val, err_forget, lam: float):
  """J = (1 − λ) · err_val + λ · |err_forget − err_val| (element-wise; errors in [0, 1])."""
  _check_lam(lam)
  err_val, err_forget = np.asarray(err_val, np.float64), np.asarray(err_forget, np.float64)
  return (1.0 - lam) * err_val + lam * np.abs(err_forget - err_val)


def bias_objective(err_val, err_forget, lam: float):
  """J = (1 − λ) · err_val − λ · err_forget, err_forget under the given (swapped) labels."""
  _check_lam(lam)
  err_val, err_forget = np.asarray(err_val, np.float64), np.asarray(err_forget, np.float64)
  return (1.0 - lam) * err_val - lam * err_forget


def objective(goal: str, err_val, err_forget, lam: float):
  """The objective of `goal` (`privacy` or `bias`)."""
  if goal == "privacy":
    return privacy_objective(err_val, err_forget, lam)
  if goal == "bias":
    return bias_objective(err_val, err_forget, lam)
  raise ValueError(f"unknown tuning goal '{goal}'; choose from {', '.join(GOALS)}")


def _check_lam(lam: float) -> None:
  if not (isinstance(lam, (int, float)) and 0.0 <= lam <= 1.0):
    raise ValueError(f"tuning trade-off λ must be in [0, 1], got {lam!r}")


def grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
  """Every combination of the values in `space` (last name varies fastest).

  Raises a one-line error on an empty list of values or a value listed twice.
  """
  names = list(space)
  values = []
  for name in names:
    v = list(space[name]) if isinstance(space[name], (list, tuple)) else [space[name]]
    if not v:
      raise ValueError(f"tuning space for '{name}' is empty; list at least one value")
    if len({repr(x) for x in v}) != len(v):
      raise ValueError(f"tuning space for '{name}' lists a value twice: {v}")
    values.append(v)
  return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def candidate_objective(goal: str, err_val: Sequence[float], err_forget: Sequence[float],
                        diverged: Sequence[bool], lam: float) -> dict[str, Any]:
  """Per-seed objectives (+inf for a diverged seed) and their mean."""
  per_seed = objective(goal, err_val, err_forget, lam)
  per_seed = np.where(np.asarray(diverged, bool), np.inf, per_seed)
  return {"objective": float(np.mean(per_seed)), "objective_per_seed": per_seed.tolist()}


def select(rows: Sequence[Mapping[str, Any]], key: str = "objective") -> Mapping[str, Any]:
  """The row with the smallest `key`: ties go to the first row; NaN or None never wins."""
  if not rows:
    raise ValueError("no tuning candidates to select from")
  best, best_value = rows[0], math.inf
  for row in rows:
    value = math.inf if row[key] is None else float(row[key])  # JSON writes inf as "inf"
    value = math.inf if math.isnan(value) else value
    if value < best_value:
      best, best_value = row, value
  return best
