"""Decision regions on planes through triplets of inputs, and how much unlearning changes them.

After Somepalli, Fowl, Bansal, Yeh-Chiang, Dar, Baraniuk, Goldblum, Goldstein, "Can Neural Nets
Learn the Same Model Twice? Investigating Reproducibility and Double Descent from the Decision
Boundary Perspective", CVPR 2022, as Alon & Dar use it (`30-overparam.md` §6, marked (R)):

  plane      through a triplet (x1, x2, x3): origin x1, orthonormal basis
               a = (x2 − x1) / |x2 − x1|,
               b = (x3 − x1) − <x3 − x1, a> a, normalised,
             so the anchors sit at plane coordinates (0, 0), (|x2 − x1|, 0) and
             (<x3 − x1, a>, <x3 − x1, b>).
  grid       R × R points x1 + u a + v b over the triangle's bounding box in (u, v), extended on
             every side by `margin` times the box's size along that axis.
  change     the fraction of grid points whose predicted label differs between two models.
  near       triplets of forget examples (and, `change_within_radius`, only the grid points within
             radius r of a forget anchor); "elsewhere": triplets of retain or test examples.

Every function is model-agnostic: it takes `apply_fn(params, model_state, x, train) -> (logits,
model_state)` (the contract of `unlearn_jax.models`) and plain pytrees, single or stacked over a
leading model axis (N models classify the same grid in one compiled program). Grid points are
classified in chunks of `chunk_size` (the last one padded) so memory stays bounded for large R.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax.train import over_models, resolve_model_axis


class Plane(NamedTuple):
  """A plane through three inputs: `origin` (= x1), orthonormal directions `a`, `b` (input
  shape), and the plane coordinates `anchors` [3, 2] of (x1, x2, x3)."""
  origin: np.ndarray
  a: np.ndarray
  b: np.ndarray
  anchors: np.ndarray


class Grid(NamedTuple):
  """R × R points of a plane: `points` [R*R, *input_shape] (row-major: v varies slowest),
  their plane coordinates `coords` [R*R, 2], and the axes `u`, `v` (each [R])."""
  points: np.ndarray
  coords: np.ndarray
  u: np.ndarray
  v: np.ndarray


def plane(x1, x2, x3, *, eps: float = 1e-12) -> Plane:
  """The plane through (x1, x2, x3) (module docstring); float64 arithmetic.

  Raises ValueError if x2 = x1 or if x3 lies on the line through x1 and x2.
  """
  x1, x2, x3 = (np.asarray(x, np.float64) for x in (x1, x2, x3))
  d2, d3 = (x2 - x1).ravel(), (x3 - x1).ravel()
  n2 = np.linalg.norm(d2)
  if n2 <= eps:
    raise ValueError("decision-region triplet: x2 equals x1, so no plane passes through them")
  a = d2 / n2
  p = d3 @ a
  b = d3 - p * a
  nb = np.linalg.norm(b)
  if nb <= eps * max(1.0, np.linalg.norm(d3)):
    raise ValueError("decision-region triplet: x3 lies on the line through x1 and x2")
  b = b / nb
  anchors = np.array([[0.0, 0.0], [n2, 0.0], [p, d3 @ b]])
  return Plane(origin=x1, a=a.reshape(x1.shape), b=b.reshape(x1.shape), anchors=anchors)


def plane_grid(pl: Plane, resolution: int, margin: float = 0.1,
               dtype=np.float32) -> Grid:
  """`resolution` × `resolution` points over the anchors' bounding box, extended by `margin`
  (a fraction of the box's extent along each axis) on every side."""
  if int(resolution) < 2:
    raise ValueError(f"decision-region resolution must be >= 2, got {resolution}")
  if not margin >= 0:
    raise ValueError(f"decision-region margin must be >= 0, got {margin}")
  lo, hi = pl.anchors.min(0), pl.anchors.max(0)
  ext = hi - lo
  lo, hi = lo - margin * ext, hi + margin * ext
  u = np.linspace(lo[0], hi[0], int(resolution))
  v = np.linspace(lo[1], hi[1], int(resolution))
  uu, vv = np.meshgrid(u, v)  # [R(v), R(u)]
  coords = np.stack([uu.ravel(), vv.ravel()], 1)
  flat = (pl.origin.ravel()[None] + coords[:, :1] * pl.a.ravel()[None]
          + coords[:, 1:] * pl.b.ravel()[None])
  points = flat.reshape(len(coords), *pl.origin.shape).astype(dtype)
  return Grid(points=points, coords=coords, u=u, v=v)


@functools.lru_cache(maxsize=None)
def _compiled_labels(apply_fn, stacked: bool, model_axis: str):
  def one(params, model_state, x):
    return jnp.argmax(apply_fn(params, model_state, x, False)[0], -1).astype(jnp.int32)

  fn = over_models(one, model_axis, in_axes=(0, 0, None)) if stacked else one
  return jax.jit(fn)


def predict_labels(apply_fn: Callable, params, model_state, x, *, chunk_size: int = 1024,
                   stacked: bool = False, model_axis: str = "vmap") -> np.ndarray:
  """argmax labels of `x` in inference mode, `[n]` (or `[N, n]` for stacked params), computed
  `chunk_size` rows at a time (the last chunk padded with zeros, so one program serves all)."""
  if int(chunk_size) < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  fn = _compiled_labels(apply_fn, bool(stacked), resolve_model_axis(model_axis))
  x = np.asarray(x)
  n = x.shape[0]
  size = min(int(chunk_size), n)
  outs = []
  for start in range(0, n, size):
    chunk = x[start:start + size]
    pad = size - chunk.shape[0]
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    out = np.asarray(fn(params, model_state, jnp.asarray(chunk)))
    outs.append(out[..., :size - pad])
  return np.concatenate(outs, axis=-1)


def stack_models(states: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
  """Stack (params, model_state) pairs of the same architecture along a new model axis."""
  params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[s[0] for s in states])
  model_state = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[s[1] for s in states])
  return params, model_state


def change_fraction(labels_a, labels_b) -> np.ndarray:
  """Fraction of grid points whose label differs, over the last axis (broadcasting: e.g. `[N,
  P]` unlearned against `[P]` original)."""
  a, b = np.asarray(labels_a), np.asarray(labels_b)
  return np.mean(a != b, axis=-1)


def within_radius(coords, centers, radius: float) -> np.ndarray:
  """Bool [P]: grid points (plane coordinates [P, 2]) within `radius` of any center [K, 2]."""
  coords, centers = np.asarray(coords, np.float64), np.asarray(centers, np.float64)
  d = np.linalg.norm(coords[:, None, :] - centers[None, :, :], axis=-1)
  return (d <= radius).any(axis=1)


def change_within_radius(labels_a, labels_b, coords, centers, radius: float) -> np.ndarray:
  """`change_fraction` restricted to the grid points within `radius` of a center (NaN if none).

  On a plane through forget anchors this is the change "within radius r of the forget
  examples" (distances in the plane are distances in input space: the basis is orthonormal)."""
  keep = within_radius(coords, centers, radius)
  if not keep.any():
    return np.full(np.broadcast_shapes(np.shape(labels_a)[:-1], np.shape(labels_b)[:-1]), np.nan)
  a, b = np.asarray(labels_a)[..., keep], np.asarray(labels_b)[..., keep]
  return change_fraction(a, b)


def sample_triplets(pool: Sequence[int], num: int, seed: int) -> np.ndarray:
  """`num` triplets [num, 3] of distinct indices from `pool` (each triplet without repeats),
  drawn with numpy's Generator(PCG64(seed)): "near" triplets from forget indices, "elsewhere"
  from retain or test indices."""
  pool = np.asarray(pool)
  if len(pool) < 3:
    raise ValueError(f"a decision-region triplet needs >= 3 examples in its pool, got {len(pool)}")
  rng = np.random.default_rng(seed)
  return np.stack([rng.choice(pool, 3, replace=False) for _ in range(int(num))]).astype(np.int64)


def region_labels(apply_fn: Callable, models: Mapping[str, tuple[Any, Any]], x, triplets, *,
                  resolution: int = 32, margin: float = 0.1, chunk_size: int = 1024,
                  stacked: bool = True, model_axis: str = "vmap") -> dict:
  """Labels of every model group on the plane grid of every triplet.

  Args:
    apply_fn: the models' apply function.
    models: name -> (params, model_state), stacked over a model axis if `stacked`.
    x: the inputs the triplets index into ([n, *input_shape]).
    triplets: [T, 3] indices into `x`.
  Returns:
    {"labels": {name: [T, (N,) R*R]}, "coords": [T, R*R, 2], "anchors": [T, 3, 2],
     "u": [T, R], "v": [T, R], "resolution": R}.
  """
  x = np.asarray(x)
  out = {name: [] for name in models}
  coords, anchors, us, vs = [], [], [], []
  for i1, i2, i3 in np.asarray(triplets):
    pl = plane(x[i1], x[i2], x[i3])
    grid = plane_grid(pl, resolution, margin, dtype=x.dtype)
    coords.append(grid.coords)
    us.append(grid.u)
    vs.append(grid.v)
    anchors.append(pl.anchors)
    for name, (params, model_state) in models.items():
      out[name].append(predict_labels(apply_fn, params, model_state, grid.points,
                                      chunk_size=chunk_size, stacked=stacked,
                                      model_axis=model_axis))
  return {"labels": {k: np.stack(v) for k, v in out.items()}, "coords": np.stack(coords),
          "anchors": np.stack(anchors), "u": np.stack(us), "v": np.stack(vs),
          "resolution": int(resolution)}


def label_image(labels, resolution: int, num_classes: int) -> np.ndarray:
  """An RGB image [R, R, 3] (float in [0, 1]) of a label grid, one tab20 colour per class,
  v increasing upwards."""
  from matplotlib import colormaps
  cmap = colormaps["tab10" if num_classes <= 10 else "tab20"]
  grid = np.asarray(labels).reshape(resolution, resolution)[::-1]
  return np.asarray(cmap(grid % cmap.N))[..., :3]


def plot_label_maps(rows: Sequence[Mapping[str, Any]], path, *, num_classes: int,
                    title: Optional[str] = None) -> Path:
  """Label maps side by side (e.g. original | unlearned | oracle), one row per triplet.

  Each row: {"maps": {column name: labels [R*R]}, "resolution": R, "anchors": [3, 2], "u": ...,
  "v": ..., "label": row title}; the anchors are marked (x1 circle, x2 square, x3 triangle).
  Writes one PNG and returns its path (Agg, no display needed).
  """
  from matplotlib.figure import Figure
  rows = list(rows)
  cols = list(rows[0]["maps"])
  fig = Figure(figsize=(2.2 * len(cols), 2.2 * len(rows) + 0.4))
  axes = fig.subplots(len(rows), len(cols), squeeze=False)
  for r, row in enumerate(rows):
    R = row["resolution"]
    extent = (row["u"][0], row["u"][-1], row["v"][0], row["v"][-1])
    for c, name in enumerate(cols):
      ax = axes[r][c]
      ax.imshow(label_image(row["maps"][name], R, num_classes), extent=extent, aspect="auto",
                interpolation="nearest")
      for (pu, pv), m in zip(row["anchors"], ("o", "s", "^")):
        ax.plot(pu, pv, m, color="white", markeredgecolor="black", markersize=6)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(name, fontsize=9)
      if c == 0 and row.get("label"):
        ax.set_ylabel(row["label"], fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=90, bbox_inches="tight")
  return path


__all__ = ["Plane", "Grid", "plane", "plane_grid", "predict_labels", "stack_models",
           "change_fraction", "within_radius", "change_within_radius", "sample_triplets",
           "region_labels", "label_image", "plot_label_maps"]
