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
seed loses to every one that did not). `random_points` draws a random search instead: each
hyperparameter from its list of values, or from a range `("log", lo, hi)` / `("uniform", lo, hi)`.

Many candidates at once: the hyperparameters a method lists in VECTORIZED (learning rate,
penalty or α coefficients) may differ between the models of one stacked state
(`methods.base.PerModel`). `vector_groups` splits a list of candidates into groups that share
every other (structural) hyperparameter (epochs, batch sizes); `stack_candidates` turns a group
of C candidates into one config for C x N stacked models (candidate-major: model c*N + s is
candidate c on seed s), `tile_models` repeats the N seeds' states and keys C times, and
`split_models` takes per-model results apart again. λ needs no rerun: `objectives` scores the
same errors for every λ at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax.methods.base import PerModel

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


def objectives(goal: str, err_val: Sequence[float], err_forget: Sequence[float],
               diverged: Sequence[bool], lams: Sequence[float]) -> dict[str, dict[str, Any]]:
  """`candidate_objective` for every λ of `lams` at once: {"0.2": {...}, "0.4": ...} (keys are
  λ written with `repr`, so they survive JSON)."""
  return {repr(float(lam)): candidate_objective(goal, err_val, err_forget, diverged, float(lam))
          for lam in lams}


def select_by_lam(rows: Sequence[Mapping[str, Any]], lams: Sequence[float]
                  ) -> dict[str, Mapping[str, Any]]:
  """The selected row for every λ (rows carry `objective_by_lam` from `objectives`)."""
  out = {}
  for lam in lams:
    key = repr(float(lam))
    scored = [{"objective": r["objective_by_lam"][key]["objective"], "row": r} for r in rows]
    out[key] = select(scored)["row"]
  return out


RANGES = ("log", "uniform")


def random_points(space: Mapping[str, Any], num: int, seed: int) -> list[dict[str, Any]]:
  """`num` distinct random points of `space` (numpy Generator(PCG64(seed))).

  An entry is a list of values (one drawn uniformly) or a range `("log", lo, hi)` (log-uniform)
  or `("uniform", lo, hi)`. With lists only, at most the grid size can be drawn (then all of it,
  in random order). Draws are made name by name in `space` order, so a point depends only on the
  seed and the space.
  """
  if int(num) < 1:
    raise ValueError(f"random search needs num_samples >= 1, got {num}")
  rng = np.random.default_rng(seed)
  dims = {}
  for name, v in space.items():
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if v and isinstance(v[0], str) and v[0] in RANGES:
      if len(v) != 3 or not (float(v[1]) < float(v[2])) or (v[0] == "log" and float(v[1]) <= 0):
        raise ValueError(f"tuning range for '{name}' must be ('log'|'uniform', lo, hi) with "
                         f"0 < lo < hi for 'log', got {tuple(v)}")
      dims[name] = (v[0], float(v[1]), float(v[2]))
    else:
      grid({name: v})  # same checks as a grid dimension
      dims[name] = v
  finite = all(isinstance(d, list) for d in dims.values())
  limit = int(np.prod([len(d) for d in dims.values()])) if finite else int(num)
  want = min(int(num), limit)
  points, seen = [], set()
  for _ in range(100 * want):
    if len(points) == want:
      break
    point = {}
    for name, d in dims.items():
      if isinstance(d, list):
        point[name] = d[int(rng.integers(len(d)))]
      elif d[0] == "log":
        point[name] = float(np.exp(rng.uniform(np.log(d[1]), np.log(d[2]))))
      else:
        point[name] = float(rng.uniform(d[1], d[2]))
    key = repr(sorted(point.items()))
    if key not in seen:
      seen.add(key)
      points.append(point)
  return points


def vector_groups(configs: Sequence[Mapping[str, Any]], vectorized: Sequence[str],
                  max_group: int = 0) -> list[list[int]]:
  """Indices of `configs` grouped by every hyperparameter not in `vectorized` (first-seen
  order, each group in the given order), split into groups of at most `max_group` (0: no
  limit). Each group can run as one program; a group of one runs alone."""
  groups: dict[str, list[int]] = {}
  for i, cfg in enumerate(configs):
    key = repr(sorted((k, repr(v)) for k, v in cfg.items() if k not in vectorized))
    groups.setdefault(key, []).append(i)
  out = []
  for g in groups.values():
    size = int(max_group) if max_group and max_group > 0 else len(g)
    out += [g[i:i + size] for i in range(0, len(g), size)]
  return out


def stack_candidates(configs: Sequence[Mapping[str, Any]], vectorized: Sequence[str],
                     num_seeds: int) -> dict[str, Any]:
  """One config for C candidates x `num_seeds` stacked models: every `vectorized` value that
  differs between the candidates becomes a `PerModel` (candidate-major, each value repeated per
  seed); the others must be equal (a ValueError names one that is not)."""
  first = dict(configs[0])
  for k in first:
    if k not in vectorized and any(repr(c[k]) != repr(first[k]) for c in configs):
      raise ValueError(f"candidates differ in '{k}', which cannot vary inside one program")
  out = dict(first)
  for k in vectorized:
    if k in first and len({repr(c[k]) for c in configs}) > 1:
      out[k] = PerModel([float(c[k]) for c in configs for _ in range(int(num_seeds))])
  return out


def tile_models(tree, copies: int):
  """Repeat a pytree stacked over N models `copies` times along its model axis ([C*N, ...],
  candidate-major)."""
  return jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * int(copies)), tree)


def split_models(values, copies: int) -> list:
  """Per-model values [C*N] (a list or array) as C lists of N (candidate-major)."""
  arr = list(np.asarray(values).tolist()) if not isinstance(values, list) else values
  n = len(arr) // int(copies)
  return [arr[c * n:(c + 1) * n] for c in range(int(copies))]
