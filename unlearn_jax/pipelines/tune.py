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

Options of `config.tune` read with defaults (so older configs run unchanged):
  search        `grid` (default) or `random` (`tuning.random_points`, `num_samples` points drawn
                with `search_seed`)
  vectorize     False (default: one candidate after another, exactly as before) or True: the
                candidates that differ only in hyperparameters the method lists in VECTORIZED
                (`tuning.vector_groups`, at most `max_group` per program) run as one stacked
                state of C x N models (`tuning.stack_candidates`); structural hyperparameters
                (epochs, batch sizes) fall back to one program per value. Same keys per seed as
                the sequential path, so the rows agree (tests/test_tuning_vectorized.py).
  lams          extra λ values to score every candidate at (`objective_by_lam`) and select for
                (`best_by_lam` in <method>_best.json); no rerun is needed for another λ.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from unlearn_jax import io, tuning
from unlearn_jax.methods import get_method, merged_config
from unlearn_jax.pipelines import experiment, reference, unlearn
from unlearn_jax.pipelines.experiment import Experiment
from unlearn_jax.pipelines.validate import method_overrides, method_space


def _errors(state, splits, config) -> dict[str, list[float]]:
  per_split = experiment.evaluate_splits(state, splits, config.eval.batch_size,
                                       config.train.model_axis)
  return {f"err_{s}": [1.0 - a for a in per_split[s]["accuracy"]] for s in splits}


def search_points(t, space) -> list[dict]:
  """The candidates of `space` under `config.tune` (`search`: grid or random)."""
  if t.get("search", "grid") == "random":
    return tuning.random_points(space, int(t.get("num_samples", 8)), int(t.get("search_seed", 0)))
  return tuning.grid(space)


def _row(tag, name, point, hp, errors, diverged, goal, lam, lams, cost, wall_s) -> dict:
  row = {**tag, "method": name, "point": io.to_jsonable(point), "config": io.to_jsonable(hp),
         **errors, "diverged": diverged,
         **tuning.candidate_objective(goal, errors["err_validation"], errors["err_forget"],
                                      diverged, lam),
         "cost": io.to_jsonable(cost), "wall_s": wall_s}
  if lams:
    row["objective_by_lam"] = tuning.objectives(goal, errors["err_validation"],
                                                errors["err_forget"], diverged, lams)
  return row


def _run_group(exp, name, hps, original, data, keys, splits, on_state=None
               ) -> list[tuple[dict, list, dict]]:
  """Run C candidates (full configs `hps`) as one stacked state of C x N models; per candidate
  (errors, diverged per seed, cost). `on_state(state)` sees the C x N unlearned models."""
  module = get_method(name)
  for hp in hps:  # every candidate's own values pass the method's checks
    module.check_config(hp, data)
  c, n = len(hps), len(exp.seeds)
  cfg = tuning.stack_candidates(hps, getattr(module, "VECTORIZED", ()), n)
  state = tuning.tile_models(original, c)
  result = unlearn.apply_method(exp, name, cfg, state, data, tuning.tile_models(keys, c))
  state = jax.block_until_ready(result.state)
  if on_state is not None:
    on_state(state)
  errors = _errors(state, splits, exp.config)
  diverged = np.atleast_1d(np.asarray(result.diverged, bool)).tolist()
  per = {k: tuning.split_models(v, c) for k, v in errors.items()}
  div = tuning.split_models(diverged, c)
  cost = {**io.to_jsonable(result.cost), "group_size": c}
  return [({k: per[k][i] for k in per}, div[i], cost) for i in range(c)]


def tune_method(exp: Experiment, name: str, original, data, *, progress=None, on_state=None
                ) -> dict[str, Any]:
  """Run every not-yet-finished candidate of method `name`; return its rows and the best.

  `progress`: optional callable(count) called as candidates finish (e.g. a tqdm bar's update).
  `on_state`: optional callable(indices, state) given each program's unlearned stacked state
  (candidate-major: models i*N .. i*N+N-1 are candidate `indices[i]` of the returned rows), so a
  caller can evaluate the selected candidates further without running them again.
  """
  config, t = exp.config, exp.config.tune
  goal, lam = str(t.goal), float(t.lam)
  lams = [float(v) for v in (t.get("lams") or ())]
  space = method_space(config, name)
  points = search_points(t, space)
  base = method_overrides(config, name)
  splits = {s: exp.splits()[s] for s in ("validation", "forget")}
  path = exp.layout.tuning_rows(name)
  tag = {"goal": goal, "lam": lam, "seeds": list(exp.seeds)}
  done = {}
  for row in io.read_jsonl(path):
    if all(row.get(k) == v for k, v in tag.items()):
      done[io.json_key(row["config"])] = row
  keys = unlearn.method_keys(exp.seeds, name)
  hps = [merged_config(name, get_method(name).DEFAULTS, {**base, **point}) for point in points]
  rows: list = [None] * len(points)
  todo = []
  for i, (point, hp) in enumerate(zip(points, hps)):
    key = io.json_key(io.to_jsonable(hp))
    if key in done:  # the same run, possibly found under a smaller space: relabel its point
      rows[i] = {**done[key], "point": io.to_jsonable(point)}
      if lams and "objective_by_lam" not in rows[i]:
        r = rows[i]
        r["objective_by_lam"] = tuning.objectives(goal, r["err_validation"], r["err_forget"],
                                                  r["diverged"], lams)
      if progress:
        progress(1)
    else:
      todo.append(i)
  vectorized = getattr(get_method(name), "VECTORIZED", ()) if t.get("vectorize", False) else ()
  groups = (tuning.vector_groups([hps[i] for i in todo], vectorized, int(t.get("max_group", 0)))
            if vectorized else [[j] for j in range(len(todo))])
  for group in groups:
    idx = [todo[j] for j in group]
    t0 = time.perf_counter()
    if len(idx) == 1:
      result = unlearn.apply_method(exp, name, hps[idx[0]], original, data, keys)
      state = jax.block_until_ready(result.state)
      if on_state is not None:
        on_state(idx, state)
      errors = _errors(state, splits, config)
      diverged = np.atleast_1d(np.asarray(result.diverged, bool)).tolist()
      outs = [(errors, diverged, result.cost)]
    else:
      hook = None if on_state is None else (lambda st, idx=idx: on_state(idx, st))
      outs = _run_group(exp, name, [hps[i] for i in idx], original, data, keys, splits, hook)
    wall = time.perf_counter() - t0
    for i, (errors, diverged, cost) in zip(idx, outs):
      row = _row(tag, name, points[i], hps[i], errors, diverged, goal, lam, lams, cost,
                 wall / len(idx))
      io.append_jsonl(path, row)
      rows[i] = row
      logging.info("tune %s %d/%d %s: J = %.4f", name, i + 1, len(points), points[i],
                   row["objective"])
    if progress:
      progress(len(idx))
  best = tuning.select(rows)
  record = {**tag, "method": name, "space": io.to_jsonable(space),
            "num_candidates": len(points), "best": best}
  if lams:
    record["best_by_lam"] = tuning.select_by_lam(rows, lams)
  io.atomic_write_json(exp.layout.tuning_best(name), record)
  out = {"best": best, "rows": rows}
  if lams:
    out["best_by_lam"] = record["best_by_lam"]
  return out


def run_tune(config, workdir) -> dict[str, dict]:
  """Tune every method of `config.methods` on the reference models of `workdir`."""
  # every config error (methods, spaces, goal, λ, validation split) before any write; keep the
  # unlearning run's config.json
  exp = experiment.setup(config, workdir, write_config=False, methods=True, tune=True)
  original, _ = reference.train_reference(exp, "original")
  data = unlearn.unlearn_data(exp)
  total = sum(len(search_points(config.tune, method_space(config, n))) for n in exp.hparams)
  out = {}
  with tqdm(total=total, desc="tune candidates", disable=not config.get("progress", True),
            leave=False) as bar:
    for name in exp.hparams:
      bar.set_postfix_str(name)
      out[name] = tune_method(exp, name, original, data, progress=bar.update)
  return out


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
