"""The shadow-model study behind `experiments.shadow_study` (`55-shadow-eval.md`, issue 18).

  run_shadow_study(config, workdir) -> summary

1. A memorisation bank (`bank/`): K half-data models with their own seed
   (`config.study.bank_seed`), Feldman-Zhang scores and the confidence proxy
   (`shadows.run_memorization`). The forget pools are chosen from these scores, so the models
   that are evaluated never choose their own forget sets.
2. For every forget-pool kind (`config.study.kinds`: `iid` = a random pool, and RUM's `high`,
   `mid`, `low`, `mixed` memorisation levels, Zhao et al. 2024, arXiv 2406.01257): the whole
   shadow evaluation in `<kind>/` (`shadows.run_shadow_eval`: K half-data originals, per-model
   forget sets from the pool, K retrain oracles, every method, U-LiRA and KLOM beside the
   retrain control and the original).
3. RUM's claim, checked with thresholds stated in the config before the run
   (`config.study.claim`): high-memorisation forget sets are harder to unlearn, i.e. a method's
   gap to the oracle is larger on `high` than on `low`. Per shadow model k (the same K models
   and halves for every kind), gap_k = |forget accuracy of the method's model k on its own
   forget set − that of retrain oracle k|; d_k = gap_k(high) − gap_k(low); a method "finds high
   harder" if mean(d) > z · SE(d) over the K models. The claim is `held` if more than
   `min_share` of the methods do, `not held` otherwise, and `uninformative` when the control
   that unlearns nothing (the original) shows the same difference (then the gap measures how
   much the oracle forgets, not how hard unlearning is). The same test on the *relative* gap
   (gap / the original's gap: the share of the distance a method leaves) is a second row, in
   which the original is 1 by definition.

Files: `bank/`, `<kind>/` (each a shadow-eval workdir), `results.json`, `report.md`, `plots/`.
Every part is resumable (the shadow stages reuse finished models and methods).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Mapping

import numpy as np
from tqdm.auto import tqdm

from unlearn_jax import io
from unlearn_jax.data.forget import MEMORIZATION_LEVELS
from unlearn_jax.errors import ConfigError
from unlearn_jax.pipelines import experiment, shadows

KINDS = ("iid", *MEMORIZATION_LEVELS)


def check_study(config) -> None:
  """`config.study`: kinds (with `high` and `low` for the claim), bank seed, thresholds."""
  s = config.get("study")
  if s is None:
    raise ConfigError("the config has no 'study' section; use "
                      "--config=experiments/configs/shadow_study.py")
  kinds = s.get("kinds")
  if not (isinstance(kinds, (tuple, list)) and kinds and all(k in KINDS for k in kinds)
          and len(set(kinds)) == len(kinds)):
    raise ConfigError(f"config.study.kinds must be distinct forget-pool kinds from "
                      f"{', '.join(KINDS)}, got {kinds!r}; set e.g. "
                      "--config.study.kinds=iid,high,mid,low")
  if not (isinstance(s.get("bank_seed"), int) and s.bank_seed >= 0
          and s.bank_seed != config.shadows.seed):
    raise ConfigError(f"config.study.bank_seed must be an integer >= 0 other than "
                      f"config.shadows.seed ({config.shadows.seed}: the bank that chooses the "
                      f"pools must not be the evaluated one), got {s.get('bank_seed')!r}; set "
                      f"e.g. --config.study.bank_seed={config.shadows.seed + 1}")
  z, share, gap = s.claim.get("z"), s.claim.get("min_share"), s.claim.get("min_gap")
  if not (isinstance(gap, (int, float)) and 0 <= gap < 1):
    raise ConfigError(f"config.study.claim.min_gap must be in [0, 1), got {gap!r}; set e.g. "
                      "--config.study.claim.min_gap=0.05")
  if not (isinstance(z, (int, float)) and z > 0):
    raise ConfigError(f"config.study.claim.z must be > 0, got {z!r}; set e.g. "
                      "--config.study.claim.z=2")
  if not (isinstance(share, (int, float)) and 0 <= share < 1):
    raise ConfigError(f"config.study.claim.min_share must be in [0, 1), got {share!r}; set e.g. "
                      "--config.study.claim.min_share=0.5")


def kind_config(config, kind: str, scores: Path):
  """The shadow-eval config of one forget-pool kind."""
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    del cfg["study"]
  if kind != "iid":
    cfg.shadows.pool_scores, cfg.shadows.pool_level = str(scores), kind
  return cfg


def bank_config(config):
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    del cfg["study"]
  cfg.shadows.seed = int(config.study.bank_seed)
  return cfg


def per_model_forget_accuracy(root: Path, name: str, design: Mapping) -> np.ndarray:
  """Accuracy of each shadow model of side `name` on its own forget rows, `[K]`."""
  logits = experiment.load_workdir_npz(root / "logits" / f"{name}.npz", f"{name}'s logits")["train"]
  y = design["train_labels"]
  idx = design["forget_index"].astype(np.int64)
  pred = np.take_along_axis(np.argmax(logits, -1), idx, axis=1)
  return (pred == y[idx]).mean(1)


def gaps(kind_root: Path, names) -> dict[str, dict[str, np.ndarray]]:
  """Per side: `abs` = |forget acc − oracle's| per model; `rel` = that over the original's
  mean gap of this kind (the share of the distance to the oracle a method leaves; the
  original's own per-model gap is 0 on many models of a `low` pool, so it is not the
  denominator); `original_mean_gap` = that mean."""
  root = kind_root / "shadows"
  design = dict(np.load(root / "design.npz"))
  oracle = per_model_forget_accuracy(root, shadows.GROUPS[1], design)
  original = np.abs(per_model_forget_accuracy(root, shadows.GROUPS[0], design) - oracle)
  scale = float(original.mean())
  out = {}
  for name in ["original", *names]:
    file = shadows.GROUPS[0] if name == "original" else name
    if not (root / "logits" / f"{file}.npz").exists():
      continue
    g = np.abs(per_model_forget_accuracy(root, file, design) - oracle)
    out[name] = {"abs": g, "rel": g / max(scale, 1e-12), "original_mean_gap": scale}
  return out


def paired(d: np.ndarray) -> dict:
  """Mean, standard error and z of a per-model difference."""
  mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
  return {"mean": mean, "se": se, "z": mean / se if se > 0 else float("inf") * np.sign(mean),
          "models": int(len(d))}


def check_claim(g_high: Mapping, g_low: Mapping, *, z: float, min_share: float, measure: str,
                min_gap: float = 0.0) -> dict:
  """RUM's claim on one gap measure (`abs` or `rel`): module docstring. A pure function of the
  per-model gaps (tested on hand-made inputs). `rel` is `not applicable` when the original's
  mean gap of either kind is below `min_gap` (nothing to unlearn there: the ratio is noise)."""
  methods = [m for m in g_high if m != "original" and m in g_low]
  premise = measure != "rel" or min(g_high["original"].get("original_mean_gap", 1.0),
                                    g_low["original"].get("original_mean_gap", 1.0)) >= min_gap
  rows = {m: paired(g_high[m][measure] - g_low[m][measure]) for m in methods}
  harder = [m for m, r in rows.items() if r["mean"] > z * r["se"]]
  share = len(harder) / len(methods) if methods else float("nan")
  control = paired(g_high["original"][measure] - g_low["original"][measure])
  control_passes = measure == "abs" and control["mean"] > z * control["se"]
  if not methods or not premise:
    verdict = "not applicable"
  elif share > min_share:
    verdict = "uninformative" if control_passes else "held"
  else:
    verdict = "not held"
  return {"measure": measure, "verdict": verdict, "share_harder": share, "harder": harder,
          "methods": len(methods), "premise": bool(premise),
          "original_mean_gap": {"high": g_high["original"].get("original_mean_gap"),
                                "low": g_low["original"].get("original_mean_gap")},
          "threshold": {"z": z, "min_share": min_share, "min_gap": min_gap},
          "control_original": control, "control_passes": bool(control_passes), "rows": rows}


def run_shadow_study(config, workdir) -> dict:
  """The study (module docstring)."""
  t0 = time.perf_counter()
  check_study(config)
  root = Path(workdir)
  shadows.check_config(config)
  experiment.check_workdir_path(root)
  bank = shadows.run_memorization(bank_config(config), root / "bank")
  scores = root / "bank" / "memorization.npz"
  summaries = {}
  for kind in tqdm(config.study.kinds, desc="shadow study pools",
                   disable=not config.get("progress", True), leave=False):
    summaries[kind] = shadows.run_shadow_eval(kind_config(config, kind, scores), root / kind)
  names = shadows.method_names(config)
  claims = []
  if "high" in config.study.kinds and "low" in config.study.kinds:
    g = {k: gaps(root / k, names) for k in ("high", "low")}
    for measure in ("abs", "rel"):
      claims.append(check_claim(g["high"], g["low"], z=float(config.study.claim.z),
                                min_share=float(config.study.claim.min_share), measure=measure,
                                min_gap=float(config.study.claim.min_gap)))
  pool_scores = {k: _pool_memorization(root / k, scores) for k in config.study.kinds}
  results = {"bank": bank, "kinds": summaries, "claims": claims, "pool_memorization": pool_scores,
             "wall_s": time.perf_counter() - t0}
  plots = write_plots(root, scores)
  io.atomic_write_json(root / "results.json", results)
  io.atomic_write_text(root / "report.md", report_md(results, config, plots))
  return results


def _pool_memorization(kind_root: Path, scores: Path) -> dict:
  """Mean bank memorisation score of a kind's pool (what the pool selection achieved)."""
  pool = np.load(kind_root / "shadows" / "design.npz")["pool"]
  s = np.load(scores)["score"][pool]
  return {"mean": float(np.nanmean(s)), "min": float(np.nanmin(s)), "max": float(np.nanmax(s))}


def write_plots(root: Path, scores: Path) -> dict:
  """The bank's memorisation histogram and score vs confidence-proxy scatter."""
  import matplotlib  # noqa: PLC0415 (only when reporting)
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  f = np.load(scores)
  (root / "plots").mkdir(parents=True, exist_ok=True)
  fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
  ax[0].hist(f["score"][np.isfinite(f["score"])], bins=40, range=(-0.5, 1.0), color="C0")
  ax[0].set(xlabel="Feldman-Zhang memorisation score", ylabel="training examples",
            title="memorisation (bank)")
  ax[1].scatter(f["confidence"], f["score"], s=3, alpha=0.4)
  ax[1].set(xlabel="mean true-class confidence over epochs (proxy)",
            ylabel="memorisation score", title="score vs proxy")
  fig.tight_layout()
  fig.savefig(root / "plots" / "memorization.png", dpi=110)
  plt.close(fig)
  return {"memorisation histogram and proxy": "plots/memorization.png"}


def report_md(results: Mapping, config, plots: Mapping) -> str:
  fmt = lambda d: f"{d['mean']:.3f} ± {d['std']:.3f}"
  b = results["bank"]
  out = [
      "# Shadow-model study: U-LiRA, KLOM and memorisation-based forget sets",
      "",
      f"{config.shadows.num} half-data models per bank ({config.data.name}, "
      f"{config.model.name}, {config.train.epochs} epochs). The forget pools are chosen from "
      f"the scores of a separate bank (seed {config.study.bank_seed}); every kind is then "
      f"evaluated on the same {config.shadows.num} models (seed {config.shadows.seed}): each "
      f"forgets {config.shadows.forget_size} examples of its half drawn from the kind's pool of "
      f"{config.shadows.pool}. U-LiRA: accuracy of the per-example attack on the "
      f"{config.shadows.targets} held-out targets (0.5 = as if never seen); KLOM: P95 (P50) of "
      "the per-example KL between the method's and the oracle's margins, on disjoint halves of "
      "each example's models (the retrain row is the oracle-vs-oracle ceiling).",
      "",
      "## Memorisation scores (the bank)",
      "",
      f"{b['scored']} of {b['examples']} examples scored ({b['in_per_example'][0]}-"
      f"{b['in_per_example'][1]} models in per example); mean {b['mean_score']:.3f}, median "
      f"{b['median_score']:.3f}, {100 * b['share_above_0.5']:.1f} % above 0.5, median standard "
      f"error {b['median_stderr']:.3f}; test accuracy of the bank's models "
      f"{fmt(b['test_accuracy'])}. Spearman correlation with the confidence proxy: "
      f"**{b['spearman_score_proxy']:.3f}**.",
      "",
      "| pool | mean score of the pool | range |",
      "|---|---|---|"]
  for kind, p in results["pool_memorization"].items():
    out.append(f"| {kind} | {p['mean']:.3f} | {p['min']:.3f} .. {p['max']:.3f} |")
  out += ["", "## U-LiRA and KLOM per forget-pool kind", ""]
  names = list(next(iter(results["kinds"].values()))["ulira"])
  header = ["side"] + [f"{k}: U-LiRA acc / AUC / TPR@1% / KLOM forget / forget acc"
                       for k in results["kinds"]]
  out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name in names:
    cells = [name]
    for kind, s in results["kinds"].items():
      r = s["ulira"].get(name)
      cells.append("—" if r is None else
                   f"{r['accuracy']['mean']:.3f} / {r['auc']['mean']:.3f} / "
                   f"{r['tpr@0.01']['mean']:.3f} / {r['klom']['forget']:.2f} "
                   f"({r['klom']['median']['forget']:.2f}) / "
                   f"{r['accuracy_of_models']['forget']['mean']:.3f}")
    out.append("| " + " | ".join(cells) + " |")
  out += ["", "## RUM's claim: high-memorisation forget sets are harder to unlearn", "",
          (f"Stated before the run (config.study.claim): a method finds `high` harder if its "
           f"per-model gap to the oracle's forget accuracy is larger on `high` than on `low` by "
           f"more than z = {config.study.claim.z:g} standard errors over the "
           f"{config.shadows.num} models (paired by model); held if more than "
           f"{100 * config.study.claim.min_share:.0f} % of the methods do; uninformative if the "
           "original (unlearns nothing) shows the same (absolute gap only: the relative gap of "
           "the original is 1 by definition)."), ""]
  if not results["claims"]:
    out.append("Not checked: the study's kinds lack `high` or `low`.")
  for c in results["claims"]:
    ctrl = c["control_original"]
    if not c["premise"]:
      out += [f"- **{c['measure']} gap: {c['verdict']}** — the original's mean gap to the "
              f"oracle is {c['original_mean_gap']['high']:.3f} on high and "
              f"{c['original_mean_gap']['low']:.3f} on low, below min_gap = "
              f"{c['threshold']['min_gap']:g}: the oracle already gets the low pool right, so "
              "there is nothing to unlearn there and a share of that distance is noise."]
      continue
    out += [f"- **{c['measure']} gap: {c['verdict']}** — {len(c['harder'])}/{c['methods']} "
            f"methods find high harder ({', '.join(c['harder']) or 'none'}); control (original): "
            f"mean difference {ctrl['mean']:+.3f} (z = {ctrl['z']:.1f})."]
    rows = "; ".join(f"{m} {r['mean']:+.3f} (z {r['z']:.1f})" for m, r in c["rows"].items())
    out += [f"  Per method, gap(high) − gap(low): {rows}."]
  out += [""]
  for title, rel in plots.items():
    out += [f"![{title}]({rel})", ""]
  out += [f"Wall time of this invocation: {results['wall_s']:.0f} s (bank and every kind; "
          "finished parts are reused on a rerun).", ""]
  return "\n".join(out)
