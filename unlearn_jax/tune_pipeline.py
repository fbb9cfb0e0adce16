"""Validation-based tuning of unlearning methods on a workdir (behind `experiments.tune`).

  run_tune(config, workdir) -> {method: {"best": row, "rows": [row, ...]}}

For every method of `config.methods` and every point of the grid `config.tune.space.<method>`
(`unlearn_jax.tuning.grid`), run the method on the `original` models (trained or reused exactly
as by `experiments.unlearn`, same per-method keys for every candidate), measure the validation
and forget errors of each seed and score the goal's objective (`unlearn_jax.tuning`). Test data is
never read, and the workdir's config.json is written only if there is none (the tuner's methods
and space must not replace those of the unlearning run). Files:
  tuning/<method>.jsonl       one row per finished candidate: hyperparameters, per-seed errors,
                              objective, divergence, cost (appended when the candidate finishes)
  tuning/<method>_best.json   the selected row, the goal, λ, the space and the grid size
A rerun (or a resumed one) skips candidates already in the JSONL file with the same goal, λ and
full hyperparameters, so an interrupted sweep loses at most the candidate that was running.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging

from unlearn_jax import io, pipeline, tuning, unlearn_pipeline
from unlearn_jax.methods import get_method, merged_config


def tune_dir(workdir) -> Path:
  return Path(workdir) / "tuning"


def method_space(config, name: str) -> dict[str, list]:
  """The declared search space of method `name` (one-line error if there is none or a name in it
  is not one of the method's hyperparameters)."""
  spaces = config.tune.get("space") or {}
  space = spaces.get(name)
  space = dict(space.to_dict() if hasattr(space, "to_dict") else (space or {}))
  space = {k: v for k, v in space.items() if v is not None}  # unset placeholders: not tuned
  if not space:
    raise ValueError(f"no tuning space for method '{name}': set e.g. "
                     f"--config.tune.space.{name}.learning_rate='(0.01, 0.02)'")
  defaults = get_method(name).DEFAULTS
  unknown = sorted(set(space) - set(defaults))
  if unknown:
    raise ValueError(f"tuning space of '{name}' names unknown hyperparameter(s) {unknown}; "
                     f"it accepts {sorted(defaults)}")
  return space


def _errors(state, splits, config) -> dict[str, list[float]]:
  per_split = pipeline.evaluate_splits(state, splits, config.eval.batch_size,
                                       config.train.model_axis)
  return {f"err_{s}": [1.0 - a for a in per_split[s]["accuracy"]] for s in splits}


def tune_method(exp: pipeline.Experiment, name: str, original, data) -> dict[str, Any]:
  """Run every not-yet-finished candidate of method `name`; return its rows and the best."""
  config, t = exp.config, exp.config.tune
  goal, lam = str(t.goal), float(t.lam)
  space = method_space(config, name)
  points = tuning.grid(space)
  base = unlearn_pipeline.method_overrides(config, name)
  splits = {s: exp.splits()[s] for s in ("validation", "forget")}
  path = tune_dir(exp.workdir) / f"{name}.jsonl"
  tag = {"goal": goal, "lam": lam, "seeds": list(exp.seeds)}
  done = {}
  for row in io.read_jsonl(path):
    if all(row.get(k) == v for k, v in tag.items()):
      done[io.json_key(row["config"])] = row
  keys = unlearn_pipeline.method_keys(exp.seeds, name)
  rows = []
  for i, point in enumerate(points):
    hp = merged_config(name, get_method(name).DEFAULTS, {**base, **point})
    key = io.json_key(io.to_jsonable(hp))
    if key in done:  # the same run, possibly found under a smaller space: relabel its point
      rows.append({**done[key], "point": io.to_jsonable(point)})
      continue
    t0 = time.perf_counter()
    result = unlearn_pipeline.apply_method(exp, name, hp, original, data, keys)
    state = jax.block_until_ready(result.state)
    errors = _errors(state, splits, config)
    diverged = np.atleast_1d(np.asarray(result.diverged, bool)).tolist()
    row = {**tag, "method": name, "point": io.to_jsonable(point), "config": io.to_jsonable(hp),
           **errors, "diverged": diverged,
           **tuning.candidate_objective(goal, errors["err_validation"], errors["err_forget"],
                                        diverged, lam),
           "cost": io.to_jsonable(result.cost), "wall_s": time.perf_counter() - t0}
    io.append_jsonl(path, row)
    rows.append(row)
    logging.info("tune %s %d/%d %s: J = %.4f", name, i + 1, len(points), point, row["objective"])
  best = tuning.select(rows)
  io.atomic_write_json(tune_dir(exp.workdir) / f"{name}_best.json",
                       {**tag, "method": name, "space": io.to_jsonable(space),
                        "num_candidates": len(points), "best": best})
  return {"best": best, "rows": rows}


def run_tune(config, workdir) -> dict[str, dict]:
  """Tune every method of `config.methods` on the reference models of `workdir`."""
  hparams = unlearn_pipeline.resolve_methods(config)  # config errors before any training
  tuning.objective(str(config.tune.goal), 0.0, 0.0, float(config.tune.lam))
  for name in hparams:
    method_space(config, name)
  exp = pipeline.setup(config, workdir, write_config=False)  # keep the unlearning run's config
  if len(exp.dataset.validation.y) == 0:
    raise ValueError("tuning needs a validation split: set config.data.validation_fraction > 0")
  original, _ = pipeline.train_reference(exp, "original")
  data = unlearn_pipeline.unlearn_data(exp)
  return {name: tune_method(exp, name, original, data) for name in hparams}


def format_table(name: str, out: dict) -> str:
  """A plain-text table of one method's candidates, the selected one marked with `*`."""
  rows = out["rows"]
  names = list(rows[0]["point"]) if rows else []
  lines = [f"{name}: " + " ".join(f"{n:>14}" for n in names)
           + f" {'val err':>8} {'forget err':>10} {'J':>8}"]
  for r in rows:
    mark = "*" if r is out["best"] else " "
    j = float(r["objective"])
    lines.append(f"{mark}{' ' * len(name)} " + " ".join(f"{str(r['point'][n]):>14}" for n in names)
                 + f" {np.mean(r['err_validation']):8.4f} {np.mean(r['err_forget']):10.4f}"
                 + f" {j:8.4f}")
  return "\n".join(lines)
