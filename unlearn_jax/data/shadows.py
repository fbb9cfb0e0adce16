"""Shadow-model designs: which training examples each model of a stacked group sees, and which
of them it must later forget (`55-shadow-eval.md`).

Per-example evaluations (LiRA / U-LiRA, Feldman-Zhang memorisation, KLOM) need many models that
each train on their own subset of the training set, so that every example is "in" some models
and "out" of others. A design is an index array `subsets [K, m]` (sorted row indices into the
training set, the same m for every model so that the K models train as one stacked program,
`train.fit(subsets=...)`) and its keep mask `keep [K, n]` (model k trained on example j).

Designs (`random_subsets`):
  `complement_pairs` (default): models 2i and 2i+1 take a random half H_i of the training set
      and its complement, so every model has exactly ⌊n/2⌋ examples and every example is "in"
      exactly K/2 models (one of each pair) — the balance the LiRA code (tensorflow/privacy
      `mi_lira_2021/train.py`: `keep = order < pkeep * K` over a random matrix) achieves per
      column, here with equal row sizes too. With n odd, one example per pair is in neither.
  `independent`: each model an independent uniformly random subset of round(fraction · n)
      examples (RUM's 70 % subsets for Feldman-Zhang scores, kairanzhao/RUM
      `surgical_plugins/cifar_infl_mem_torch.py`); in/out counts then vary per example.

Per-model forget sets (`per_model_forget_sets`): model k forgets `size` examples drawn uniformly
from its own subset ∩ a fixed forgettable pool (the KLOM authors' U-LiRA plans:
RoyRin/data-unlearning-bench `ulira_plans.py`, 200 of a pool of 1,000 class-5 examples), and
retains the rest of its subset. Every model's forget and retain sets have the same sizes, so an
unlearning method runs all K models in one program (`methods.base.UnlearnData` with
`retain_index` / `forget_index`).

All draws are pure functions of their arguments and `seed` (`np.random.default_rng`).
"""

from __future__ import annotations

import numpy as np

DESIGNS = ("complement_pairs", "independent")


def keep_mask(subsets, num_examples: int) -> np.ndarray:
  """`keep [K, n]` bool: model k trained on example j (j in `subsets[k]`)."""
  subsets = np.asarray(subsets)
  keep = np.zeros((subsets.shape[0], num_examples), bool)
  np.put_along_axis(keep, subsets.astype(np.int64), True, axis=1)
  return keep


def random_subsets(num_models: int, num_examples: int, *, seed: int,
                   design: str = "complement_pairs", fraction: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Per-model training subsets of equal size: `(subsets [K, m] int32 sorted, keep [K, n])`.

  Args:
    num_models: K >= 2 (even for `complement_pairs`).
    num_examples: n, the size of the training set.
    seed: seed of the draw.
    design: `complement_pairs` (halves and their complements; `fraction` must be 0.5) or
      `independent` (independent subsets of round(fraction · n)); see the module docstring.
    fraction: the share of the training set each model sees.
  """
  if design not in DESIGNS:
    raise ValueError(f"unknown shadow design {design!r}; choose one of {', '.join(DESIGNS)}")
  if not (isinstance(num_models, (int, np.integer)) and num_models >= 2):
    raise ValueError(f"a shadow design needs at least 2 models (some in, some out for every "
                     f"example), got {num_models!r}")
  if not 0 < fraction < 1:
    raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
  rng = np.random.default_rng(seed)
  if design == "complement_pairs":
    if num_models % 2:
      raise ValueError(f"design 'complement_pairs' needs an even number of models, got "
                       f"{num_models}; use an even number or design 'independent'")
    if fraction != 0.5:
      raise ValueError(f"design 'complement_pairs' splits in halves (fraction 0.5), got "
                       f"fraction {fraction}; use design 'independent' for other fractions")
    half = num_examples // 2
    if half < 1:
      raise ValueError(f"{num_examples} examples cannot be split into halves")
    rows = []
    for _ in range(num_models // 2):
      perm = rng.permutation(num_examples)
      rows += [np.sort(perm[:half]), np.sort(perm[half:2 * half])]
  else:
    m = int(np.floor(fraction * num_examples + 0.5))
    if not 1 <= m < num_examples:
      raise ValueError(f"fraction {fraction} of {num_examples} examples gives {m} per model; "
                       "it must leave at least one example in and one out")
    rows = [np.sort(rng.choice(num_examples, size=m, replace=False))
            for _ in range(num_models)]
  subsets = np.stack(rows).astype(np.int32)
  return subsets, keep_mask(subsets, num_examples)


def subsets_from_mask(keep, *, seed: int) -> np.ndarray:
  """Index arrays `[K, m]` from a keep mask `[K, n]` whose rows may hold different counts.

  m is the largest row count; a model with fewer examples is padded with a uniform draw from
  its own examples (without replacement while it can), so it sees those examples twice per
  epoch and never an example outside its subset. Rows are sorted. Every row needs at least one
  example.
  """
  keep = np.asarray(keep, bool)
  if keep.ndim != 2:
    raise ValueError(f"keep must be a [models, examples] mask, got shape {keep.shape}")
  counts = keep.sum(1)
  if counts.min() == 0:
    raise ValueError(f"model(s) {np.flatnonzero(counts == 0).tolist()} have no training "
                     "example in the keep mask")
  m = int(counts.max())
  rng = np.random.default_rng(seed)
  rows = []
  for row in keep:
    own = np.flatnonzero(row)
    extra = []
    while len(own) + len(extra) < m:
      need = m - len(own) - len(extra)
      extra += list(rng.choice(own, size=min(need, len(own)), replace=False))
    rows.append(np.sort(np.concatenate([own, np.asarray(extra, np.int64)])))
  return np.stack(rows).astype(np.int32)


def per_model_forget_sets(subsets, *, size: int, seed: int, pool=None
                          ) -> tuple[np.ndarray, np.ndarray]:
  """Per model: `size` forget examples drawn from its subset ∩ `pool`, the rest retained.

  Args:
    subsets: `[K, m]` training subsets (row indices, one row per model, no repeats in a row).
    size: f, the forget-set size of every model, 1 <= f < m.
    seed: seed of the draw.
    pool: optional forgettable pool (indices of the training set); default every example.

  Returns:
    `(forget_index [K, f], retain_index [K, m − f])`, int32, sorted per row: training-set rows.
  """
  subsets = np.asarray(subsets, np.int64)
  if subsets.ndim != 2:
    raise ValueError(f"subsets must be [models, m] row indices, got shape {subsets.shape}")
  m = subsets.shape[1]
  if not (isinstance(size, (int, np.integer)) and 1 <= size < m):
    raise ValueError(f"the per-model forget size must be an integer in [1, {m}) (each model "
                     f"trains on {m} examples), got {size!r}")
  rng = np.random.default_rng(seed)
  pool = None if pool is None else np.unique(np.asarray(pool, np.int64))
  forget, retain = [], []
  for k, row in enumerate(subsets):
    if len(np.unique(row)) != m:
      raise ValueError(f"model {k}'s subset repeats examples; per-model forget sets need "
                       "subsets without repeats (random_subsets)")
    candidates = row if pool is None else np.intersect1d(row, pool)
    if len(candidates) < size:
      raise ValueError(f"model {k} trained on only {len(candidates)} examples of the forget "
                       f"pool, fewer than the forget size {size}; enlarge the pool or lower the "
                       "forget size")
    f = np.sort(rng.choice(candidates, size=size, replace=False))
    forget.append(f)
    retain.append(np.setdiff1d(row, f, assume_unique=True))
  return np.stack(forget).astype(np.int32), np.stack(retain).astype(np.int32)
