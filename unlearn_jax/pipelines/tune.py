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
from typing import Any

import jax
import numpy as np
from absl import logging

from unlearn_jax import io, tuning
from unlearn_jax.methods import get_method, merged_config
from unlearn_jax.pipelines import experiment, reference, unlearn
from unlearn_jax.pipelines.experiment import Experiment
from unlearn_jax.pipelines.validate import method_overrides, method_space


def _errors(state, splits, config) -> dict[str, list[float]]:
  per_split = experiment.evaluate_splits(state, splits, config.eval.batch_size,
                                       config.train.model_axis)
  return {f"err_{s}": [1.0 - a for a in per_split[s]["accuracy"]] for s in splits}


def tune_method(exp: Experiment, name: str, original, data) -> dict[str, Any]:
  """Run every not-yet-finished candidate of method `name`; return its rows and the best."""
  config, t = exp.config, exp.config.tune
  goal, lam = str(t.goal), float(t.lam)
  space = method_space(config, name)
  points = tuning.grid(space)
  base = method_overrides(config, name)
  splits = {s: exp.splits()[s] for s in ("validation", "forget")}
  path = exp.layout.tuning_rows(name)
  tag = {"goal": goal, "lam": lam, "seeds": list(exp.seeds)}
  done = {}
  for row in io.read_jsonl(path):
    if all(row.get(k) == v for k, v in tag.items()):
      done[io.json_key(row["config"])] = row
  keys = unlearn.method_keys(exp.seeds, name)
  rows = []
  for i, point in enumerate(points):
    hp = merged_config(name, get_method(name).DEFAULTS, {**base, **point})
    key = io.json_key(io.to_jsonable(hp))
    if key in done:  # the same run, possibly found under a smaller space: relabel its point
      rows.append({**done[key], "point": io.to_jsonable(point)})
      continue
    t0 = time.perf_counter()
    result = unlearn.apply_method(exp, name, hp, original, data, keys)
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
  io.atomic_write_json(exp.layout.tuning_best(name),
                       {**tag, "method": name, "space": io.to_jsonable(space),
                        "num_candidates": len(points), "best": best})
  return {"best": best, "rows": rows}


def run_tune(config, workdir) -> dict[str, dict]:
  """Tune every method of `config.methods` on the reference models of `workdir`."""
  # every config error (methods, spaces, goal, λ, validation split) before any write; keep the
  # unlearning run's config.json
  exp = experiment.setup(config, workdir, write_config=False, methods=True, tune=True)
  original, _ = reference.train_reference(exp, "original")
  data = unlearn.unlearn_data(exp)
  return {name: tune_method(exp, name, original, data) for name in exp.hparams}


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
