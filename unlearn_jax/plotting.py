"""PNG plots of an unlearning report.

Each function takes plain numbers/arrays, writes one PNG and returns its path; none of them
knows about workdirs or metrics. Used by `unlearn_jax.report`. Figures are built with
`matplotlib.figure.Figure` and rendered by Agg directly, so no display is needed and the global
pyplot backend (e.g. a notebook's inline backend) is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _figure(**kwargs):
  from matplotlib.figure import Figure
  return Figure(**kwargs)


def _colors() -> list[str]:
  import matplotlib
  return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path, dpi: int = 100) -> Path:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi, bbox_inches="tight")
  return path


_STYLE = {"oracle": dict(marker="*", color="tab:red", markersize=16, zorder=5),
          "original": dict(marker="s", color="black", markersize=9, zorder=4),
          "method": dict(marker="o", color="tab:blue", markersize=7, zorder=3)}


def _scatter(ax, points, *, legend: bool, only=None) -> None:
  for p in points:
    style = _STYLE.get(p["kind"], _STYLE["method"])
    (fx, fs), (tx, ts) = p["forget"], p["test"]
    ax.errorbar(100 * fx, 100 * tx, xerr=100 * fs, yerr=100 * ts, linestyle="none",
                capsize=2, label=p["name"] if legend and p["kind"] != "method" else None, **style)
    if only is None or only(p):
      ax.annotate(p["name"], (100 * fx, 100 * tx), textcoords="offset points", xytext=(5, 4),
                  fontsize=7)
  oracle = [p for p in points if p["kind"] == "oracle"]
  if oracle:
    ax.axvline(100 * oracle[0]["forget"][0], color="tab:red", lw=0.8, ls="--", alpha=0.6)
  ax.set_xlabel("forget accuracy (%)")
  ax.grid(alpha=0.3)


def forget_vs_test(points: Sequence[Mapping], path, *, title: str | None = None,
                   zoom_pp: float = 10.0) -> Path:
  """Forget accuracy (x) vs test accuracy (y), mean ± std over seeds, one point per model group.

  Left: every group. Right (when some group lies far from the oracle): a zoom on the groups
  within `zoom_pp` percentage points of the oracle on both axes, where methods usually crowd.

  Args:
    points: dicts with `name`, `kind` (`oracle`, `original` or `method`), `forget` and `test`
      as (mean, std) accuracies in [0, 1]. Groups without numbers are left out by the caller.
    path: the PNG to write.
    zoom_pp: half-width of the zoom window around the oracle, in percentage points.
  """
  oracle = [p for p in points if p["kind"] == "oracle"]
  near = lambda p: (abs(p["forget"][0] - oracle[0]["forget"][0]) * 100 <= zoom_pp and
                    abs(p["test"][0] - oracle[0]["test"][0]) * 100 <= zoom_pp)
  zoom = bool(oracle) and not all(near(p) for p in points)
  fig = _figure(figsize=(12.0 if zoom else 6.5, 5))
  axes = fig.subplots(1, 2 if zoom else 1, squeeze=False)[0]
  _scatter(axes[0], points, legend=True, only=(lambda p: not near(p)) if zoom else None)
  axes[0].set_ylabel("test accuracy (%)")
  if oracle or any(p["kind"] == "original" for p in points):
    axes[0].legend(loc="best", fontsize=8)
  if zoom:
    close = [p for p in points if near(p)]
    _scatter(axes[1], close, legend=False)
    xs = [100 * p["forget"][0] for p in close]
    ys = [100 * p["test"][0] for p in close]
    axes[1].set_xlim(min(xs) - 1, max(xs) + 1.5)
    axes[1].set_ylim(min(ys) - 1, max(ys) + 1)
    axes[1].set_title(f"within {zoom_pp:g} pp of the oracle", fontsize=9)
  fig.suptitle(title or "Forget vs test accuracy (closer to the oracle ★ is better)")
  return _save(fig, path)


def mia_bars(names: Sequence[str], series: Mapping[str, tuple], path, *,
             oracle: Mapping[str, float] | None = None, title: str | None = None) -> Path:
  """Grouped bars of membership-inference scores per model group.

  Args:
    names: the model groups (x axis).
    series: metric label -> (means, stds), each a sequence aligned with `names` (NaN = none).
    path: the PNG to write.
    oracle: metric label -> the oracle's mean, drawn as a dashed line of the bar's color.
  """
  fig = _figure(figsize=(min(14.0, max(6.0, 0.35 * len(names) * max(1, len(series)))), 4.2))
  ax = fig.subplots()
  x = np.arange(len(names))
  width = 0.8 / max(1, len(series))
  colors = _colors()
  for k, (label, (means, stds)) in enumerate(series.items()):
    color = colors[k % len(colors)]
    m = 100 * np.asarray(means, dtype=float)
    s = 100 * np.asarray(stds, dtype=float)
    ax.bar(x + (k - (len(series) - 1) / 2) * width, np.nan_to_num(m), width, yerr=np.nan_to_num(s),
           capsize=2, label=label, color=color)
    if oracle and label in oracle and np.isfinite(oracle[label]):
      ax.axhline(100 * oracle[label], color=color, ls="--", lw=1)
  ax.set_xticks(x, names, rotation=40, ha="right")
  ax.set_ylabel("%")
  ax.set_title(title or "Membership inference per method (dashed: oracle)")
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
  return _save(fig, path)


def confidence_histograms(groups: Sequence[tuple[str, np.ndarray]], oracle_conf: np.ndarray,
                          examples: Sequence[int], path, *, bins: int = 20,
                          title: str | None = None) -> Path:
  """Histograms of logit-scaled confidence, unlearned models vs retrained ones.

  One row per model group; the first column pools every forget example, the others show single
  forget examples (one value per seed, so few bars at small N).

  Args:
    groups: (name, conf `[M, n]`) per model group, conf = logit-scaled confidence of the true
      class on the forget set (`metrics.logit_scaled_confidence`).
    oracle_conf: `[M_r, n]` the same for the retrained (oracle) models.
    examples: forget-set indices shown individually.
    path: the PNG to write.
  """
  cols = 1 + len(examples)
  rows = max(1, len(groups))
  height = 1.4 * rows + 0.9
  fig = _figure(figsize=(2.6 * cols, height))
  axes = fig.subplots(rows, cols, squeeze=False)
  fig.subplots_adjust(hspace=0.35, wspace=0.25, top=1 - 0.75 / height)
  for r, (name, conf) in enumerate(groups):
    for c in range(cols):
      ax = axes[r, c]
      if c == 0:
        u, o = conf.reshape(-1), oracle_conf.reshape(-1)
      else:
        u, o = conf[:, examples[c - 1]], oracle_conf[:, examples[c - 1]]
      u, o = u[np.isfinite(u)], o[np.isfinite(o)]
      both = np.concatenate([u, o])
      if both.size == 0:
        ax.set_axis_off()
        continue
      lo, hi = float(both.min()), float(both.max())
      edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1) if hi - lo < 1e-6 else np.linspace(
          lo, hi, bins + 1)
      ax.hist(o, bins=edges, alpha=0.55, color="tab:red", label="retrained", density=c == 0,
              histtype="stepfilled")
      ax.hist(u, bins=edges, alpha=0.55, color="tab:blue", label="unlearned", density=c == 0,
              histtype="stepfilled")
      ax.tick_params(labelsize=6)
      ax.set_yticks([])
      if r == 0:
        ax.set_title("all forget examples" if c == 0 else f"forget example {examples[c - 1]}",
                     fontsize=9)
      if c == 0:
        ax.set_ylabel(name, fontsize=9)
  axes[0, 0].legend(fontsize=7)
  fig.suptitle(title or "Logit-scaled confidence on the forget set: unlearned vs retrained",
               fontsize=10, y=1 - 0.15 / height)
  return _save(fig, path, dpi=80)


def epsilon_histograms(groups: Sequence[tuple[str, Mapping]], ceiling: Mapping | None, path, *,
                       cols: int = 4, title: str | None = None) -> Path:
  """Per-example ε of the forgetting-quality score, each method against the ceiling.

  Args:
    groups: (name, {"edges": [B + 1], "counts": [B]}) per method (`report.eps_histogram`).
    ceiling: the same for the oracle-vs-oracle ceiling (drawn in every panel), or None.
    path: the PNG to write.
  """
  n = max(1, len(groups))
  cols = min(cols, n)
  rows = -(-n // cols)
  fig = _figure(figsize=(2.6 * cols, 1.9 * rows + 0.6))
  axes = fig.subplots(rows, cols, squeeze=False)
  for ax in axes.ravel()[len(groups):]:
    ax.set_axis_off()
  for ax, (name, hist) in zip(axes.ravel(), groups):
    counts = np.asarray(hist["counts"], np.float64)
    x = np.arange(len(counts))
    ax.bar(x, counts / max(counts.sum(), 1.0), width=0.9, color="tab:blue", alpha=0.7,
           label="method")
    if ceiling is not None:
      c = np.asarray(ceiling["counts"], np.float64)
      ax.step(x, c / max(c.sum(), 1.0), where="mid", color="tab:red", label="ceiling")
    edges = hist["edges"]
    ticks = [i for i in range(len(counts)) if i % 4 == 0] + [len(counts) - 1]
    ax.set_xticks(ticks, [f"{edges[i]:g}" if i < len(counts) - 1 else f">={edges[i]:g}"
                          for i in ticks], fontsize=6)
    ax.tick_params(labelsize=6)
    ax.set_title(name, fontsize=9)
  axes[0, 0].set_ylabel("fraction of forget examples", fontsize=7)
  axes[0, 0].legend(fontsize=6)
  fig.suptitle(title or "Per-example ε (lower is better): methods vs oracle-vs-oracle ceiling",
               fontsize=10)
  fig.tight_layout()
  return _save(fig, path, dpi=80)
