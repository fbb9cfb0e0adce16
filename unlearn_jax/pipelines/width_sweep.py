"""How does width change unlearning? The sweep of Alon & Dar (arXiv 2503.08633) behind
`experiments.width_sweep` (`30-overparam.md`).

  run_sweep(config, workdir) -> results

For every width k of `config.sweep.widths` and every goal of `config.sweep.goals` (privacy on
an IID forget set, bias removal on the `confusion` forget set) one ordinary experiment lives in
`workdir/w<k>/<goal>/` (its own config.json, forget set, models; `pipelines.experiment`):

  1. the `original` and `oracle` (= Retrain, the reference) groups, >= 3 seeds each, trained or
     resumed exactly as by `experiments.train`;
  2. per method (SCRUB, NegGrad+, L1-sparse, Finetune): validation-based tuning for the goal
     (`pipelines.tune.tune_method`, many candidates per program, every λ of
     `config.tune.lams` scored at once; validation and forget errors only, never the test set or
     the oracle); then, for the candidate selected at each λ, the numbers the paper reports:
     test/forget/validation error, loss-threshold MIA (forget vs test), A/B confusion on test
     (bias goal), the objective J, and the decision-region change against the original model
     (`unlearn_jax.decision_regions`) near the forget examples and elsewhere. The selected
     candidates' states come straight from the tuning programs (no second run), or, on a resumed
     run, from rerunning the selected configuration with the same keys;
  3. `sweep/<method>.json` (written last: a finished method is skipped on resume) and
     `sweep/references.json` (original and oracle numbers, region labels in `sweep/regions.npz`).

Then `workdir/results.json`, `results.csv`, `report.md` (tables per goal and width, the spec's
headline claims checked one by one, §7) and `plots/` (errors, MIA, J and region change against
width; label maps original | methods | oracle for a few triplets at the narrowest and widest
width).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from unlearn_jax import decision_regions as dr
from unlearn_jax import io, metrics, tuning
from unlearn_jax.errors import ConfigError
from unlearn_jax.methods import get_method, merged_config
from unlearn_jax.pipelines import experiment, reference, tune, unlearn, validate
from unlearn_jax.train import MODEL_AXIS_STRATEGIES, predict

GOALS = tuning.GOALS
GAP_SMALL = 0.05    # claim 3: a "small" original forget-test error gap
MIA_DECENT = 0.1    # claim 3: "decent privacy", |MIA - 0.5| at most this
SPLITS = ("train", "forget", "validation", "test")


# ----------------------------------------------------------------------------------------------
# Configs of the cells.


def width_tag(width: float) -> str:
  """Folder name of a width: `w0.125`."""
  return f"w{float(width):g}"


def cell_config(config, width: float, goal: str):
  """The experiment config of one (width, goal) cell: the sweep config without `sweep`, with
  `model.width = width`, the goal's forget set and `tune.goal = goal`."""
  cfg = copy.deepcopy(config)
  sweep = cfg.sweep
  with cfg.unlocked():
    del cfg["sweep"]
  cfg.model.width = float(width)
  cfg.forget = copy.deepcopy(sweep.goals[goal])
  cfg.tune.goal = goal
  return cfg


def check_config(config) -> None:
  """Every sweep-level setting and every cell's config, before anything is written."""
  s = config.get("sweep")
  if s is None:
    raise ConfigError("config.sweep is missing; use experiments/configs/width_sweep.py")
  widths = [float(w) for w in s.widths]
  if not widths or any(not (w > 0 and math.isfinite(w)) for w in widths):
    raise ConfigError(f"config.sweep.widths must be positive numbers, got {tuple(s.widths)}; "
                      "set e.g. --config.sweep.widths='(0.125, 0.5)'")
  if len(set(widths)) != len(widths):
    raise ConfigError(f"config.sweep.widths lists a width twice: {tuple(s.widths)}; list each "
                      "once")
  goals = list(s.goals)
  if not goals or any(g not in GOALS for g in goals):
    raise ConfigError(f"config.sweep.goals must be among {', '.join(GOALS)}, got {goals}; set "
                      "e.g. --config.sweep.goals=privacy,bias")
  raw = config.tune.lams
  if not (isinstance(raw, (tuple, list)) and raw and
          all(validate.is_real(v) and 0 <= v <= 1 for v in raw)):  # NaN fails the interval
    raise ConfigError(f"config.tune.lams must be numbers in [0, 1], got {raw!r}; set e.g. "
                      "--config.tune.lams=0.2,0.4,0.6")
  lams = [float(v) for v in raw]
  if float(config.tune.lam) not in lams:
    raise ConfigError(f"config.tune.lam = {config.tune.lam} (the λ of the headline tables) must "
                      f"be one of tune.lams {tuple(lams)}; set --config.tune.lam to one of them")
  if len(config.seeds) < 1:
    raise ConfigError("config.seeds is empty; set e.g. --config.seeds=0,1,2")
  r = s.regions
  validate.check_int(config, "sweep.regions.triplets", 1, 4)
  validate.check_int(config, "sweep.regions.resolution", 2, 24)
  validate.check_int(config, "sweep.regions.chunk_size", 1, 1024)
  validate.check_real(config, "sweep.regions.margin", 0, 10, 0.1)
  validate.check_real(config, "sweep.regions.radius", 0, 10, 0.25)
  validate.check_int(config, "sweep.regions.maps", 0, 1)
  validate.check_int(config, "sweep.regions.seed", 0, 0)
  if int(r.maps) > int(r.triplets):
    raise ConfigError(f"config.sweep.regions.maps = {r.maps} label maps of {r.triplets} "
                      f"triplets; set --config.sweep.regions.maps to at most "
                      f"config.sweep.regions.triplets")
  validate.check_choice(config, "sweep.method_model_axis", MODEL_AXIS_STRATEGIES)
  for goal in goals:
    cfg = cell_config(config, widths[0], goal)
    plan = validate.plan(cfg, methods=True)
    data = _plan_data(plan, cfg)
    for name in cfg.methods:
      hint = f"fix --config.tune.space.{name}"
      with validate.section(f"tune.space.{name}", hint):
        space = validate.method_space(cfg, name)
        points = tune.search_points(cfg.tune, space)
      base = validate.method_overrides(cfg, name)
      for point in points:
        with validate.section(f"tune.space.{name}", hint):
          get_method(name).check_config(
              merged_config(name, get_method(name).DEFAULTS, {**base, **point}), data)
    if len(plan.dataset.validation.y) == 0:
      raise ConfigError("the width sweep tunes on a validation split, but "
                        "config.data.validation_fraction is 0; set it to e.g. 0.1")


def _plan_data(plan, cfg):
  from unlearn_jax.methods import UnlearnData
  f, r = plan.forget_set.indices, plan.forget_set.retain_indices()
  labels = plan.forget_set.train_labels
  x = plan.dataset.train.x
  return UnlearnData(retain_x=x[r], retain_y=labels[r], forget_x=x[f], forget_y=labels[f],
                     num_classes=plan.dataset.num_classes, model=plan.model,
                     image_shape=plan.dataset.image_shape, model_axis=cfg.train.model_axis)


# ----------------------------------------------------------------------------------------------
# Numbers of one stacked state.


def state_metrics(exp, state, *, goal: str) -> dict[str, list[float]]:
  """Per seed: error on every split (forget: w.r.t. the training labels), the loss-LR MIA
  (forget vs test, 0.5 = chance) and, for the bias goal, the A/B confusion on test (the
  fraction of test examples of class A or B predicted as the other one)."""
  splits = exp.splits()
  ev, axis = exp.config.eval, exp.config.train.model_axis
  out: dict[str, list] = {}
  logits = {s: np.asarray(predict(state, splits[s][0], batch_size=int(ev.batch_size),
                                  model_axis=axis), np.float64) for s in SPLITS}
  labels = {s: np.asarray(splits[s][1]) for s in SPLITS}
  n = logits["test"].shape[0]
  for s in SPLITS:
    out[f"err_{s}"] = [float(np.mean(np.argmax(logits[s][i], -1) != labels[s])) for i in range(n)]
  out["mia"] = []
  for i in range(n):
    fl = metrics.softmax_cross_entropy_per_example(logits["forget"][i], labels["forget"])
    tl = metrics.softmax_cross_entropy_per_example(logits["test"][i], labels["test"])
    out["mia"].append(metrics.mia_loss_lr(fl, tl, n_splits=int(ev.mia_splits),
                                          seed=int(ev.mia_seed)))
  if goal == "bias":
    a, b = int(exp.config.forget.class_a), int(exp.config.forget.class_b)
    y = labels["test"]
    ab = (y == a) | (y == b)
    other = np.where(y == a, b, a)
    out["confusion_ab"] = [float(np.mean(np.argmax(logits["test"][i], -1)[ab] == other[ab]))
                           for i in range(n)]
  return out


def triplets(exp, config) -> dict[str, np.ndarray]:
  """Indices into the training set: "near" triplets of forget examples, "elsewhere" triplets
  of retain examples (seeded by `sweep.regions.seed`)."""
  r = config.sweep.regions
  f, keep = exp.forget_set.indices, exp.forget_set.retain_indices()
  return {"near": dr.sample_triplets(f, int(r.triplets), int(r.seed)),
          "elsewhere": dr.sample_triplets(keep, int(r.triplets), int(r.seed) + 1)}


def region_labels(exp, config, state, trip) -> dict[str, np.ndarray]:
  """Labels [T, N, R*R] of the stacked state on the planes of the "near" and "elsewhere"
  triplets, plus their plane coordinates and anchors."""
  r = config.sweep.regions
  x = exp.dataset.train.x
  out = {}
  for where, t in trip.items():
    lab = dr.region_labels(state.apply_fn, {"m": (state.params, state.model_state)}, x, t,
                           resolution=int(r.resolution), margin=float(r.margin),
                           chunk_size=int(r.chunk_size), stacked=True,
                           model_axis=exp.config.train.model_axis)
    out[f"{where}_labels"] = lab["labels"]["m"]
    for k in ("coords", "anchors", "u", "v"):
      out[f"{where}_{k}"] = lab[k]
  return out


def region_change(labels: Mapping[str, np.ndarray], original: Mapping[str, np.ndarray],
                  radius: float) -> dict[str, list[float]]:
  """Per seed, the fraction of grid points whose label differs from the original model's (seed
  i against seed i), averaged over triplets: `near`, `elsewhere`, and `near_radius` (only the
  grid points within `radius` times the mean anchor distance of a forget anchor)."""
  out = {}
  for where in ("near", "elsewhere"):
    a, o = labels[f"{where}_labels"], original[f"{where}_labels"]  # [T, N, P]
    out[where] = np.mean(dr.change_fraction(a, o), axis=0).tolist()
  rad = []
  a, o = labels["near_labels"], original["near_labels"]
  for t in range(a.shape[0]):
    anchors = original["near_anchors"][t]
    d = np.mean([np.linalg.norm(anchors[i] - anchors[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    rad.append(dr.change_within_radius(a[t], o[t], original["near_coords"][t], anchors,
                                       radius * d))
  out["near_radius"] = np.nanmean(np.stack(rad), axis=0).tolist()
  return out


def _lam_key(lam) -> str:
  return repr(float(lam))


def objective_of(goal: str, m: Mapping[str, list], lam: float) -> float:
  """J of a group from its own validation and forget errors (mean over seeds)."""
  return float(np.mean(tuning.objective(goal, m["err_validation"], m["err_forget"], lam)))


# ----------------------------------------------------------------------------------------------
# One cell.


def run_references(exp, config, trip) -> tuple[Any, dict, dict]:
  """Train or reuse original and oracle; their numbers and region labels (cached)."""
  layout = exp.layout
  path, npz = layout.root / "sweep" / "references.json", layout.root / "sweep" / "regions.npz"
  original, cost_o = reference.train_reference(exp, "original")
  if path.exists() and npz.exists():
    regions = experiment.load_workdir_npz(npz, "the reference models' region labels")
    return original, experiment.read_workdir_json(path, "the reference metrics"), regions
  oracle, cost_r = reference.train_reference(exp, "oracle")
  goal = exp.config.tune.goal
  refs = {"original": state_metrics(exp, original, goal=goal),
          "oracle": state_metrics(exp, oracle, goal=goal),
          "cost": {"original": cost_o, "oracle": cost_r}}
  regions = {f"original_{k}": v for k, v in region_labels(exp, config, original, trip).items()}
  oracle_regions = region_labels(exp, config, oracle, trip)
  regions.update({f"oracle_{k}": v for k, v in oracle_regions.items() if k.endswith("labels")})
  radius = float(config.sweep.regions.radius)
  orig = {k[len("original_"):]: v for k, v in regions.items() if k.startswith("original_")}
  refs["oracle"]["regions"] = region_change(oracle_regions, orig, radius)
  lams = [float(v) for v in config.tune.lams]
  for g in ("original", "oracle"):
    refs[g]["objective"] = {_lam_key(l): objective_of(goal, refs[g], l) for l in lams}
  io.atomic_savez(npz, **regions)
  io.atomic_write_json(path, refs)
  return original, refs, regions


def _take(state, idx: Sequence[int]):
  return jax.tree_util.tree_map(lambda a: a[np.asarray(idx)], state)


def run_method(exp, config, name: str, original, data, regions, trip, bar=None) -> dict:
  """Tune method `name` for the cell's goal, then evaluate the candidate selected at every λ."""
  layout = exp.layout
  path = layout.root / "sweep" / f"{name}.json"
  if path.exists():
    return experiment.read_workdir_json(path, f"method {name}'s tuned results")
  goal = exp.config.tune.goal
  n = len(exp.seeds)
  kept: dict[int, Any] = {}  # candidate index -> its N unlearned models (selected ones only)
  states = []

  def on_state(idx, state):
    states.append((list(idx), state))

  t0 = time.perf_counter()
  out = tune.tune_method(exp, name, original, data, on_state=on_state)
  rows = out["rows"]
  index = {id(r): i for i, r in enumerate(rows)}
  chosen = {lam: index[id(r)] for lam, r in out["best_by_lam"].items()}
  for idx, state in states:
    for j, i in enumerate(idx):
      if i in chosen.values():
        kept[i] = _take(state, range(j * n, (j + 1) * n))
  states.clear()
  orig_regions = {k[len("original_"):]: v for k, v in regions.items()
                  if k.startswith("original_")}
  keys = unlearn.method_keys(exp.seeds, name)
  evaluated: dict[int, dict] = {}
  for lam, i in chosen.items():
    if i in evaluated:
      continue
    state = kept.get(i)
    if state is None:  # a resumed run: the tuning rows were on disk, rerun the selected config
      hp = merged_config(name, get_method(name).DEFAULTS, rows[i]["config"])
      state = jax.block_until_ready(unlearn.apply_method(exp, name, hp, original, data,
                                                         keys).state)
    m = state_metrics(exp, state, goal=goal)
    labels = region_labels(exp, config, state, trip)
    m["regions"] = region_change(labels, orig_regions, float(config.sweep.regions.radius))
    evaluated[i] = {"metrics": m, "labels": {k: v for k, v in labels.items()
                                             if k.endswith("_labels")}}
  record = {"method": name, "uses_forget": bool(get_method(name).USES_FORGET), "goal": goal,
            "num_candidates": len(rows), "wall_s": time.perf_counter() - t0, "by_lam": {}}
  maps = {}
  for lam, i in chosen.items():
    row = rows[i]
    record["by_lam"][lam] = {
        "point": row["point"], "objective": row["objective_by_lam"][lam]["objective"],
        "diverged": row["diverged"], **evaluated[i]["metrics"]}
    if float(lam) == float(config.tune.lam):
      maps = evaluated[i]["labels"]
  io.atomic_savez(layout.root / "sweep" / f"{name}_regions.npz", **maps)
  io.atomic_write_json(path, record)
  return record


def run_cell(config, root: Path, width: float, goal: str, bar=None) -> dict:
  """Everything of one (width, goal) cell; resumable per reference group and per method."""
  cfg = cell_config(config, width, goal)
  exp = experiment.setup(cfg, root / width_tag(width) / goal, methods=True)
  (exp.layout.root / "sweep").mkdir(exist_ok=True)
  trip = triplets(exp, config)
  original, _ = reference.train_reference(exp, "original")
  # Everything after reference training (methods, tuning programs of C x N models, evaluation,
  # regions) maps its models with `sweep.method_model_axis`: on XLA:CPU `vmap` compiles one copy
  # of a step instead of C x N (compiling dominates at these sizes); results do not depend on it
  # beyond float rounding, and the trained reference groups are unaffected.
  axis = str(config.sweep.get("method_model_axis", "auto"))
  if axis != "auto":
    mcfg = copy.deepcopy(exp.config)
    mcfg.train.model_axis = axis
    exp = dataclasses.replace(exp, config=mcfg)
  original, refs, regions = run_references(exp, config, trip)
  if bar is not None:
    bar.update(1)
  data = unlearn.unlearn_data(exp)
  methods = {}
  for name in cfg.methods:
    if bar is not None:
      bar.set_postfix_str(f"{width_tag(width)} {goal} {name}")
    methods[name] = run_method(exp, config, name, original, data, regions, trip, bar)
    if bar is not None:
      bar.update(1)
  return {"width": float(width), "goal": goal, "references": refs, "methods": methods,
          "num_params": _num_params(original), "dir": str(exp.layout.root),
          "forget_size": int(len(exp.forget_set.indices)),
          "num_train": int(len(exp.dataset.train))}


def _num_params(state) -> int:
  from unlearn_jax.models import count_params
  return count_params(jax.tree_util.tree_map(lambda a: a[0], state.params))


# ----------------------------------------------------------------------------------------------
# The sweep.


def run_sweep(config, workdir) -> dict:
  """Run (or resume) every cell, then write results.json, results.csv, report.md and plots."""
  t0 = time.perf_counter()
  check_config(config)
  root = Path(workdir).absolute()
  experiment.check_workdir_path(root)
  root.mkdir(parents=True, exist_ok=True)
  io.atomic_write_json(root / "config.json", config)
  widths = [float(w) for w in config.sweep.widths]
  goals = [g for g in GOALS if g in config.sweep.goals]  # privacy first
  total = len(widths) * len(goals) * (1 + len(config.methods))
  bar = tqdm(total=total, desc="width sweep", disable=not config.progress)
  cells = []
  for width in widths:
    for goal in goals:
      cells.append(run_cell(config, root, width, goal, bar))
  bar.close()
  results = {"dataset": config.data.name, "model": config.model.name, "widths": widths,
             "goals": goals, "methods": list(config.methods), "seeds": list(config.seeds),
             "lams": [float(v) for v in config.tune.lams], "lam": float(config.tune.lam),
             "forget": {g: io.to_jsonable(config.sweep.goals[g]) for g in goals},
             "cells": cells, "wall_s": time.perf_counter() - t0,
             "devices": [str(d) for d in jax.devices()]}
  results["claims"] = check_claims(results)
  io.atomic_write_json(root / "results.json", results)
  io.atomic_write_text(root / "results.csv", to_csv(results))
  if config.sweep.plots:
    write_plots(root, results, config)
  io.atomic_write_text(root / "report.md", to_markdown(results, config))
  return results


# ----------------------------------------------------------------------------------------------
# Tables, claims, plots.


def _mean(v) -> float:
  v = [x for x in np.atleast_1d(v) if x is not None and not (isinstance(x, float) and
                                                               math.isnan(x))]
  return float(np.mean(v)) if v else float("nan")


def series(results: dict, goal: str) -> dict[str, dict[str, list[float]]]:
  """group -> quantity -> value per width (means over seeds) at the headline λ."""
  lam = _lam_key(results["lam"])
  out: dict[str, dict[str, list]] = {}
  for cell in (c for c in results["cells"] if c["goal"] == goal):
    groups = {"original": cell["references"]["original"], "retrain": cell["references"]["oracle"]}
    groups.update({n: r["by_lam"][lam] for n, r in cell["methods"].items()})
    for g, m in groups.items():
      d = out.setdefault(g, {})
      for k in ("err_train", "err_test", "err_forget", "err_validation", "mia", "confusion_ab"):
        if k in m:
          d.setdefault(k, []).append(_mean(m[k]))
      j = m["objective"][lam] if isinstance(m.get("objective"), dict) else m.get("objective")
      d.setdefault("J", []).append(float(j) if j is not None else float("nan"))
      for k in ("near", "elsewhere", "near_radius"):
        if "regions" in m:
          d.setdefault(f"change_{k}", []).append(_mean(m["regions"][k]))
  return out


def check_claims(results: dict) -> list[dict]:
  """The spec's headline claims (§7, plus §6's decision-region claim), each with the numbers that
  decide it: "held" or "not held" and by how much."""
  widths = results["widths"]
  claims = []
  if len(widths) < 2:
    return [{"claim": "needs >= 2 widths", "held": None, "evidence": ""}]
  methods = results["methods"]
  for goal in results["goals"]:
    s = series(results, goal)
    better = [m for m in methods if s[m]["J"][-1] < s[m]["J"][0]]
    ev = ", ".join(f"{m} {s[m]['J'][0]:.3f} → {s[m]['J'][-1]:.3f}" for m in methods)
    claims.append({
        "claim": f"{goal}: unlearning is more successful on the widest model (lower J, λ = "
                 f"{results['lam']:g}, narrowest → widest)",
        "held": len(better) * 2 > len(methods),
        "evidence": f"{len(better)}/{len(methods)} methods lower: {ev}"})
  if "bias" in results["goals"]:
    s = series(results, "bias")
    users = [m for m in methods if m in ("scrub", "neggrad_plus")]
    retain_only = [m for m in methods if m in ("l1_sparse", "finetune")]
    if users and retain_only:
      gain = {m: s[m]["J"][0] - s[m]["J"][-1] for m in users + retain_only}
      best_user = min(users, key=lambda m: s[m]["J"][-1])
      best_other = min(retain_only, key=lambda m: s[m]["J"][-1])
      held = (s[best_user]["J"][-1] < s[best_other]["J"][-1]
              and max(gain[m] for m in users) > max(gain[m] for m in retain_only))
      claims.append({
          "claim": "bias: the wide-model advantage needs a method that uses the forget set (the "
                   "best of SCRUB / NegGrad+ beats every retain-only method, L1-sparse and "
                   "Finetune, at the widest width and gains more with width)",
          "held": held,
          "evidence": (f"widest J: {best_user} {s[best_user]['J'][-1]:.3f} vs "
                       + ", ".join(f"{m} {s[m]['J'][-1]:.3f}" for m in retain_only)
                       + "; J gain narrowest→widest: "
                       + ", ".join(f"{m} {g:+.3f}" for m, g in gain.items())
                       + "; forget error (given labels) at widest: "
                       + ", ".join(f"{m} {s[m]['err_forget'][-1]:.3f}"
                                   for m in users + retain_only))})
  if "privacy" in results["goals"]:
    s = series(results, "privacy")
    o = s["original"]
    gap = [abs(f - t) for f, t in zip(o["err_forget"], o["err_test"])]
    mia_narrow = np.mean([s[m]["mia"][0] for m in methods])
    mia_wide = np.mean([s[m]["mia"][-1] for m in methods])
    # "small gap" and "decent privacy": within 5 points of error and 0.1 of MIA chance
    held = (gap[0] <= GAP_SMALL and abs(mia_narrow - 0.5) <= MIA_DECENT
            and o["err_test"][0] > o["err_test"][-1])
    claims.append({
        "claim": "privacy: narrow models have decent privacy when their original forget-test gap "
                 f"is small (<= {GAP_SMALL:g}), but generalize worse",
        "held": bool(held),
        "evidence": (f"original |forget err − test err| narrowest {gap[0]:.3f} (widest "
                     f"{gap[-1]:.3f}); mean MIA of the methods narrowest {mia_narrow:.3f}, widest "
                     f"{mia_wide:.3f} (chance 0.5, decent: within {MIA_DECENT:g}); original "
                     f"test error narrowest {o['err_test'][0]:.3f} vs widest "
                     f"{o['err_test'][-1]:.3f}")})
  for goal in results["goals"]:
    s = series(results, goal)
    users = [m for m in methods if m in ("scrub", "neggrad_plus")] or methods
    ratio = lambda m, i: s[m]["change_near"][i] / max(s[m]["change_elsewhere"][i], 1e-3)
    local = [m for m in users if s[m]["change_near"][-1] > s[m]["change_elsewhere"][-1]]
    sharper = [m for m in users if ratio(m, -1) > ratio(m, 0)]
    claims.append({
        "claim": f"{goal}: in the widest model unlearning changes decision regions near the "
                 "forget examples more than elsewhere, and more locally than in the narrowest",
        "held": len(local) * 2 > len(users) and len(sharper) * 2 > len(users),
        "evidence": "; ".join(
            f"{m}: near/elsewhere narrowest {s[m]['change_near'][0]:.3f}/"
            f"{s[m]['change_elsewhere'][0]:.3f}, widest {s[m]['change_near'][-1]:.3f}/"
            f"{s[m]['change_elsewhere'][-1]:.3f}" for m in users)})
  return claims


def _pct(v) -> str:
  return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def to_csv(results: dict) -> str:
  lines = ["goal,width,group,lam,err_train,err_test,err_forget,err_validation,mia,confusion_ab,J,"
           "change_near,change_elsewhere,change_near_radius"]
  for cell in results["cells"]:
    refs = cell["references"]
    rows = [("original", refs["original"], None), ("retrain", refs["oracle"], None)]
    for name, r in cell["methods"].items():
      rows += [(name, m, lam) for lam, m in r["by_lam"].items()]
    for g, m, lam in rows:
      j = m["objective"] if lam is not None else m["objective"][_lam_key(results["lam"])]
      reg = m.get("regions", {})
      vals = [_mean(m.get(k, [float("nan")])) for k in ("err_train", "err_test", "err_forget",
                                                         "err_validation", "mia",
                                                         "confusion_ab")]
      vals += [j] + [_mean(reg.get(k, [float("nan")])) for k in ("near", "elsewhere",
                                                                   "near_radius")]
      lines.append(",".join([cell["goal"], f"{cell['width']:g}", g,
                             "" if lam is None else lam] + [f"{v:.6g}" for v in vals]))
  return "\n".join(lines) + "\n"


def work_seconds(results: dict) -> float:
  """Seconds the cells' reference groups and methods took when they were computed."""
  total = 0.0
  for cell in results["cells"]:
    total += sum(c.get("wall_s", 0.0) for c in cell["references"]["cost"].values())
    total += sum(r.get("wall_s", 0.0) for r in cell["methods"].values())
  return total


def to_markdown(results: dict, config) -> str:
  lam = results["lam"]
  out = [f"# Width sweep: {results['model']} on {results['dataset']}", "",
         f"Widths {', '.join(f'{w:g}' for w in results['widths'])}; seeds "
         f"{len(results['seeds'])} (original and oracle = Retrain each); methods "
         f"{', '.join(results['methods'])}, each tuned per width and goal on the validation split "
         f"(λ ∈ {{{', '.join(f'{v:g}' for v in results['lams'])}}}); tables at λ = {lam:g}. "
         "Errors in %, means over seeds. MIA: loss-threshold logistic regression, forget vs "
         "test, 0.5 = chance. J: the goal's objective on validation/forget errors (lower is "
         "better). Region change: % of plane-grid points whose label differs from the original "
         "model, on planes through forget triplets (near), within radius r of a forget anchor "
         "(near-r), and through retain triplets (elsewhere).", "",
         f"Wall time of this invocation {results['wall_s']:.0f} s on "
         f"{', '.join(results['devices'])} (a resumed run reuses finished cells; reference "
         f"training and method tuning of all cells took {work_seconds(results):.0f} s when "
         "they ran).", "",
         "## Headline claims (`30-overparam.md` §6-7)", "",
         "| claim | verdict | evidence |", "|---|---|---|"]
  for c in results["claims"]:
    verdict = "—" if c["held"] is None else ("held" if c["held"] else "**not held**")
    out.append(f"| {c['claim']} | {verdict} | {c['evidence']} |")
  for goal in results["goals"]:
    f = results["forget"][goal]
    size = next(c["forget_size"] for c in results["cells"] if c["goal"] == goal)
    num_train = next(c["num_train"] for c in results["cells"] if c["goal"] == goal)
    desc = (f"IID forget set of {size} of {num_train} training examples"
            if goal == "privacy" else
            f"confusion forget set: {f.get('num_examples')} examples of classes "
            f"{f.get('class_a')} and {f.get('class_b')} with swapped labels")
    out += ["", f"## Goal: {goal} ({desc})", ""]
    head = ["width", "params", "group", "train err", "test err", "forget err", "MIA", "J"]
    if goal == "bias":
      head.insert(7, "A/B conf.")
    head += ["Δregions near / near-r / elsewhere", "selected"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in (c for c in results["cells"] if c["goal"] == goal):
      refs = cell["references"]
      groups = [("original", refs["original"], ""), ("retrain (oracle)", refs["oracle"], "")]
      groups += [(n, r["by_lam"][_lam_key(lam)],
                  ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                            for k, v in r["by_lam"][_lam_key(lam)]["point"].items()))
                 for n, r in cell["methods"].items()]
      for g, m, sel in groups:
        j = m["objective"][_lam_key(lam)] if isinstance(m["objective"], dict) else m["objective"]
        reg = m.get("regions")
        regs = ("—" if reg is None else
                f"{_pct(_mean(reg['near']))} / {_pct(_mean(reg['near_radius']))} / "
                f"{_pct(_mean(reg['elsewhere']))}")
        row = [f"{cell['width']:g}", f"{cell['num_params']:,}", g, _pct(_mean(m["err_train"])),
               _pct(_mean(m["err_test"])), _pct(_mean(m["err_forget"])),
               f"{_mean(m['mia']):.3f}", f"{j:.4f}"]
        if goal == "bias":
          row.insert(7, _pct(_mean(m["confusion_ab"])))
        row += [regs, sel]
        out.append("| " + " | ".join(row) + " |")
    out += ["", "J of the selected candidate at each λ (validation; lower is better):", "",
            "| width | method | " + " | ".join(f"λ={v:g}" for v in results["lams"]) + " |",
            "|---|---|" + "---|" * len(results["lams"])]
    for cell in (c for c in results["cells"] if c["goal"] == goal):
      for n, r in cell["methods"].items():
        out.append(f"| {cell['width']:g} | {n} | " + " | ".join(
            f"{r['by_lam'][_lam_key(v)]['objective']:.4f} "
            f"({', '.join(f'{x:g}' if isinstance(x, float) else str(x) for x in r['by_lam'][_lam_key(v)]['point'].values())})"
            for v in results["lams"]) + " |")
    if config.sweep.plots:
      out += ["", f"![{goal} vs width](plots/{goal}_vs_width.png)", ""]
      for w in (results["widths"][0], results["widths"][-1]):
        out.append(f"![label maps {goal} {w:g}](plots/maps_{goal}_{width_tag(w)}.png)")
  return "\n".join(out) + "\n"


def write_plots(root: Path, results: dict, config) -> None:
  """Per goal: errors, MIA, J and region change against width; label maps."""
  from matplotlib.figure import Figure
  plots = root / "plots"
  plots.mkdir(exist_ok=True)
  widths = results["widths"]
  panels = [("err_test", "test error"), ("err_forget", "forget error (given labels)"),
            ("mia", "MIA (0.5 = chance)"), ("J", f"J (λ = {results['lam']:g})"),
            ("change_near", "region change near forget"),
            ("change_elsewhere", "region change elsewhere")]
  for goal in results["goals"]:
    s = series(results, goal)
    fig = Figure(figsize=(13, 7.5))
    axes = fig.subplots(2, 3, gridspec_kw=dict(hspace=0.4)).ravel()
    colors = {g: f"C{i}" for i, g in enumerate(s)}  # one colour per group in every panel
    for ax, (key, title) in zip(axes, panels):
      for g, d in s.items():
        if key in d:
          style = dict(ls="--", marker="s") if g in ("original", "retrain") else dict(marker="o")
          ax.plot(widths, d[key], label=g, color=colors[g], **style)
      ax.set_xscale("log", base=2)
      ax.set_xlabel("width multiplier k")
      ax.set_title(title, fontsize=10)
      ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{results['model']} on {results['dataset']}: {goal} goal")
    fig.savefig(plots / f"{goal}_vs_width.png", dpi=90, bbox_inches="tight")
    for cell in (c for c in results["cells"] if c["goal"] == goal and
                 c["width"] in (widths[0], widths[-1])):
      _label_maps(plots / f"maps_{goal}_{width_tag(cell['width'])}.png", cell, config)


def _label_maps(path: Path, cell: dict, config) -> None:
  d = Path(cell["dir"]) / "sweep"
  refs = experiment.load_workdir_npz(d / "regions.npz", "the reference models' region labels")
  methods = {}
  for name in cell["methods"]:
    p = d / f"{name}_regions.npz"
    if p.exists():
      methods[name] = experiment.load_workdir_npz(p, f"method {name}'s region labels")
  rows = []
  n_show = min(int(config.sweep.regions.maps), refs["original_near_labels"].shape[0])
  for where in ("near", "elsewhere"):
    for t in range(n_show):
      maps = {"original": refs[f"original_{where}_labels"][t, 0]}
      for name, m in methods.items():
        if f"{where}_labels" in m:
          maps[name] = m[f"{where}_labels"][t, 0]
      maps["retrain"] = refs[f"oracle_{where}_labels"][t, 0]
      rows.append({"maps": maps, "resolution": int(config.sweep.regions.resolution),
                   "anchors": refs[f"original_{where}_anchors"][t],
                   "u": refs[f"original_{where}_u"][t], "v": refs[f"original_{where}_v"][t],
                   "label": f"{where} {t}"})
  num_classes = int(max(np.max(r["maps"]["original"]) for r in rows)) + 1
  dr.plot_label_maps(rows, path, num_classes=max(num_classes, 10),
                     title=f"{cell['goal']}, width {cell['width']:g} (seed 0)")


def one_line(results: dict, workdir) -> str:
  """The one-line summary printed at the end."""
  held = [c for c in results["claims"] if c["held"]]
  judged = [c for c in results["claims"] if c["held"] is not None]
  return (f"width sweep {results['model']} on {results['dataset']}: widths "
          f"{'/'.join(f'{w:g}' for w in results['widths'])} x {len(results['goals'])} goals x "
          f"{len(results['methods'])} methods, {len(results['seeds'])} seeds | claims held "
          f"{len(held)}/{len(judged)} | {results['wall_s']:.0f}s -> {Path(workdir) / 'report.md'}")
