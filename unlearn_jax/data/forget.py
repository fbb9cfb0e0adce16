"""Forget-set builders: which training examples an unlearning method must forget.

Five kinds, as used by the papers this library reimplements:

* ``iid``: a uniformly random subset of the training set (a count or a
  fraction of it).
* ``non_iid``: a random ``fraction`` of each of the listed classes.
* ``classwise``: every example of the listed classes.
* ``confusion``: ``num_examples // 2`` examples of class A and as many of
  class B whose labels are swapped (A->B, B->A) before training; the model is
  trained on the swapped labels and must then forget them. These swapped
  labels are the forget set's "given labels" (``train_labels[indices]``).
* ``memorization``: ``N`` examples chosen by a per-example memorisation score
  (RUM, Zhao et al. 2024, arXiv 2406.01257, kairanzhao/RUM ``main_forget.py``):
  the most (``high``), least (``low``) or medium (``mid``) memorised ones, or
  a third of each (``mixed``). The scores are read from an ``.npz`` file
  (`load_memorization_scores`).

Builders are pure functions of their arguments and ``seed``
(``np.random.default_rng(seed)``) and return sorted, unique int64 indices into
the training set. A `ForgetSet` also carries the labels the model trains with,
and is saved next to an experiment (`load_or_build_forget_set`) so that every
run in a workdir uses the same forget set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
import zlib
from typing import Any, Iterable, Mapping

import numpy as np

from unlearn_jax import io

FORGET_KINDS = ("iid", "non_iid", "classwise", "confusion", "memorization")
MEMORIZATION_LEVELS = ("high", "mid", "low", "mixed")
MID_CENTERS = ("half", "median")
# How a memorisation scores file is made (in the one-line errors of `load_memorization_scores`).
SCORES_COMMAND = ("`python -m experiments.memorization "
                  "--config=experiments/configs/memorization.py --workdir=DIR`")
SCORES_HELP = (f"run {SCORES_COMMAND} first, then point --config.forget.scores at "
               "DIR/memorization.npz")


@dataclasses.dataclass(frozen=True, eq=False)
class ForgetSet:
  """A forget set and the training labels that go with it.

  Attributes:
    kind: one of `FORGET_KINDS`.
    indices: sorted, unique int64 indices into the training set.
    train_labels: int32 labels of the whole training set as the model is
      trained with them: the original labels, except for ``'confusion'``
      where the labels of `indices` are swapped.
  """

  kind: str
  indices: np.ndarray
  train_labels: np.ndarray

  def __post_init__(self):
    indices = np.array(self.indices, dtype=np.int64)
    train_labels = np.array(self.train_labels, dtype=np.int32)
    indices.setflags(write=False)
    train_labels.setflags(write=False)
    object.__setattr__(self, "indices", indices)
    object.__setattr__(self, "train_labels", train_labels)

  def __len__(self) -> int:
    return int(self.indices.shape[0])

  @property
  def num_train(self) -> int:
    """Size of the training set the indices refer to."""
    return int(self.train_labels.shape[0])

  def retain_indices(self) -> np.ndarray:
    """Sorted int64 indices of the training examples not in the forget set."""
    return np.setdiff1d(np.arange(self.num_train, dtype=np.int64),
                        self.indices, assume_unique=True)


# --- builders -----------------------------------------------------------------


def iid(num_train: int, *, seed: int, count: int | None = None,
        fraction: float | None = None) -> np.ndarray:
  """A uniformly random forget set of the training set.

  Args:
    num_train: size of the training set.
    seed: seed of the draw.
    count: number of examples to forget, in [1, num_train). Give exactly one
      of `count` and `fraction`.
    fraction: fraction of the training set to forget, in (0, 1]; the count is
      ``round(fraction * num_train)`` and must be in [1, num_train).

  Returns:
    Sorted, unique int64 indices.

  Raises:
    ValueError: both or neither of count/fraction, or a size out of range.
  """
  count = _resolve_count("iid", num_train, count, fraction)
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(num_train, size=count, replace=False)).astype(
      np.int64)


def non_iid(labels: np.ndarray, *, classes: Iterable[int], fraction: float,
            seed: int) -> np.ndarray:
  """A random `fraction` of the examples of each listed class.

  Each class ``c`` contributes ``round(fraction * n_c)`` uniformly drawn
  examples, so the forget set holds the same fraction of every listed class.

  Args:
    labels: int labels of the training set, shape (N,).
    classes: class ids to draw from, in [0, num_classes) where num_classes is
      ``max(labels) + 1``.
    fraction: fraction of each class to forget, in (0, 1].
    seed: seed of the draw.

  Returns:
    Sorted, unique int64 indices.
  """
  labels = _as_labels(labels)
  classes = _check_classes(classes, labels, "non_iid")
  _check_fraction(fraction)
  rng = np.random.default_rng(seed)
  picked = []
  for c in classes:
    members = np.flatnonzero(labels == c)
    k = int(np.floor(fraction * members.size + 0.5))
    picked.append(rng.choice(members, size=k, replace=False))
  return _finish(np.concatenate(picked), labels.shape[0])


def classwise(labels: np.ndarray, *, classes: Iterable[int]) -> np.ndarray:
  """Every training example of the listed classes.

  Args:
    labels: int labels of the training set, shape (N,).
    classes: class ids to forget, in [0, max(labels) + 1).

  Returns:
    Sorted, unique int64 indices.
  """
  labels = _as_labels(labels)
  classes = _check_classes(classes, labels, "classwise")
  return _finish(np.flatnonzero(np.isin(labels, classes)), labels.shape[0])


def confusion(labels: np.ndarray, *, class_a: int, class_b: int,
              num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Confused examples: half from class A relabeled B, half from B relabeled A.

  Args:
    labels: int labels of the training set, shape (N,).
    class_a: first class id.
    class_b: second class id, different from `class_a`.
    num_examples: total size of the forget set; even, >= 2, and
      ``num_examples // 2`` may not exceed the examples of either class.
    seed: seed of the draw.

  Returns:
    ``(indices, new_labels)``: sorted, unique int64 indices of the confused
    examples, and the int32 labels of the WHOLE training set with the swap
    applied at those indices (unchanged elsewhere).
  """
  labels = _as_labels(labels)
  if class_a is None or class_b is None or num_examples is None:
    raise ValueError(
        "confusion forget set needs class_a, class_b and num_examples; set "
        "all three.")
  _check_classes((class_a, class_b), labels, "confusion")
  if class_a == class_b:
    raise ValueError(
        f"confusion needs two different classes, got class_a == class_b == "
        f"{class_a}; pick another class_b.")
  if num_examples < 2 or num_examples % 2:
    raise ValueError(
        f"confusion num_examples must be even and >= 2 (half from each class), "
        f"got {num_examples}.")
  half = num_examples // 2
  rng = np.random.default_rng(seed)
  picked = []
  for c in (class_a, class_b):
    members = np.flatnonzero(labels == c)
    if half > members.size:
      raise ValueError(
          f"confusion needs {half} examples of class {c} but the training set "
          f"has {members.size}; use num_examples <= {2 * members.size}.")
    picked.append(rng.choice(members, size=half, replace=False))
  indices = _finish(np.concatenate(picked), labels.shape[0])
  new_labels = labels.astype(np.int32)  # a copy
  new_labels[picked[0]] = class_b
  new_labels[picked[1]] = class_a
  return indices, new_labels


def memorization(scores: Any, *, level: str, seed: int, count: int | None = None,
                 fraction: float | None = None, mid_center: str = "half") -> np.ndarray:
  """``N`` training examples chosen by their memorisation score (RUM's forget sets).

  The levels follow RUM (Zhao et al. 2024, arXiv 2406.01257; kairanzhao/RUM
  ``main_forget.py``, the ``args.mem`` branch and ``select_fs``):

  * ``high``: the ``N`` highest scores;
  * ``low``: the ``N`` lowest scores;
  * ``mid``: the ``N`` scores closest to the centre: ``0.5`` with
    ``mid_center="half"`` (RUM's rule for Feldman-Zhang scores, which lie in
    [-1, 1] and mostly in [0, 1]), or the median of the finite scores with
    ``mid_center="median"`` (RUM's rule for its memorisation *proxies*, whose
    scale is arbitrary, ``select_fs``);
  * ``mixed``: a third of ``N`` from each of high, mid and low, disjoint. With
    ``N = 3q + r`` high gets ``q + (r >= 1)``, mid ``q + (r >= 2)`` and low
    ``q`` examples (so the sizes sum to ``N``; RUM takes ``N // 3`` of each and
    drops the remainder). High is picked first, then low among the rest, then
    mid among what is left, so the three parts never overlap.

  Examples whose score is not finite (NaN: no estimate, e.g. an example that
  every shadow model trained on; also +-inf) are never selected, by any level.
  Ties (equal scores, or for ``mid`` equal distances to the centre) are broken
  by a random key drawn from ``np.random.default_rng(seed)`` (one permutation of
  the training set): deterministic for a seed, and free of the index-order bias
  that breaking ties by index would give on class-sorted data (Feldman-Zhang
  scores are quantised, so ties are common). The seed matters only for ties.

  Args:
    scores: float per-example memorisation scores of the whole training set,
      shape ``[num_train]`` (higher = more memorised); NaN where there is no
      estimate.
    level: one of `MEMORIZATION_LEVELS`.
    seed: seed of the tie-breaking key.
    count: number of examples to forget, in [1, num_train) and at most the
      number of finite scores. Give exactly one of `count` and `fraction`.
    fraction: fraction of the training set (``num_train``, NaN scores
      included) to forget, in (0, 1]; the count is
      ``round(fraction * num_train)``, with the same limits as `count`.
    mid_center: ``"half"`` or ``"median"``, the centre of ``mid`` (and of the
      mid third of ``mixed``).

  Returns:
    Sorted, unique int64 indices.

  Raises:
    ValueError: scores not a 1-D float array, no finite score, an unknown
      level or centre, both or neither of count/fraction, or a size out of
      range.
  """
  scores = _as_scores(scores)
  num_train = scores.shape[0]
  if level not in MEMORIZATION_LEVELS:
    raise ValueError(f"Unknown memorization level {level!r}; choose one of "
                     f"{', '.join(MEMORIZATION_LEVELS)}.")
  if mid_center not in MID_CENTERS:
    raise ValueError(f"Unknown memorization mid_center {mid_center!r}; choose one of "
                     f"{', '.join(MID_CENTERS)} (0.5, or the median of the scores).")
  count = _resolve_count("memorization", num_train, count, fraction)
  finite = np.isfinite(scores)
  num_finite = int(finite.sum())
  if num_finite == 0:
    raise ValueError(f"No finite memorization score among the {num_train} examples (all "
                     "NaN); recompute the scores (e.g. with more shadow models).")
  if count > num_finite:
    raise ValueError(
        f"memorization forget set needs {count} examples with a finite score, but only "
        f"{num_finite} of the {num_train} have one (the others are NaN: never selected); "
        f"forget at most {num_finite} (count or fraction).")
  candidates = np.flatnonzero(finite)
  tiebreak = np.random.default_rng(seed).permutation(num_train)

  def ranked(key: np.ndarray) -> np.ndarray:
    """The finite examples by ascending `key`, ties by the seeded key."""
    return candidates[np.lexsort((tiebreak[candidates], key[candidates]))]

  center = 0.5 if mid_center == "half" else float(np.median(scores[finite]))
  order = {"high": lambda: ranked(-scores), "low": lambda: ranked(scores),
           "mid": lambda: ranked(np.abs(scores - center))}
  if level != "mixed":
    return _finish(order[level]()[:count], num_train)
  q, r = divmod(count, 3)
  sizes = {"high": q + (r >= 1), "low": q, "mid": q + (r >= 2)}
  taken = np.zeros(num_train, dtype=bool)
  for part in ("high", "low", "mid"):  # high first, then low, then mid among the rest
    ranking = order[part]()
    picked = ranking[~taken[ranking]][:sizes[part]]
    taken[picked] = True
  return _finish(np.flatnonzero(taken), num_train)


@dataclasses.dataclass(frozen=True, eq=False)
class MemorizationScores:
  """A memorisation scores file (`load_memorization_scores`).

  Attributes:
    score: float64 per-example scores of the training set, ``[num_train]``;
      NaN where there is no estimate.
    stderr: their standard errors (same shape), or None.
    proxy: what the scores are (e.g. ``"feldman_zhang"``, ``"confidence"``),
      or None.
    dataset: the dataset name they were computed on, or None.
  """

  score: np.ndarray
  stderr: np.ndarray | None = None
  proxy: str | None = None
  dataset: str | None = None

  def sha256(self) -> str:
    """A digest of `score` (what the forget set is chosen from)."""
    return scores_sha256(self.score)


def scores_sha256(score: Any) -> str:
  """SHA-256 of the scores as little-endian float64 (NaN payloads normalised)."""
  arr = np.ascontiguousarray(np.asarray(score, dtype="<f8"))
  arr = np.where(np.isnan(arr), np.nan, arr).astype("<f8")
  return hashlib.sha256(arr.tobytes()).hexdigest()


def load_memorization_scores(path: str | os.PathLike[str] | None, num_train: int, *,
                             dataset: str | None = None,
                             labels: Any = None) -> MemorizationScores:
  """Reads a memorisation scores file and checks it against the training set.

  The file is an ``.npz`` (``np.savez``, no pickles) with

  * ``score`` (required): float ``[num_train]``, one score per training
    example, in the order of the loaded dataset's train split (which depends
    on ``config.data``: name, split_seed, validation_fraction,
    max_train_examples); NaN where there is no estimate. Higher must mean
    more memorised: a proxy that falls with memorisation (RUM's learning-event
    confidence, `unlearn_jax.metrics.memorization.confidence_proxy`) is saved
    negated or as ``1 - proxy``;
  * ``stderr`` (optional): float ``[num_train]``, standard errors;
  * ``proxy`` (optional): a string naming the score (``"feldman_zhang"``, a
    proxy's name);
  * ``dataset`` (optional): the dataset name; checked against `dataset`;
  * ``labels`` (optional): int ``[num_train]`` training labels the scores were
    computed with; checked against `labels` (catches another split of the
    same dataset).

  Other arrays (e.g. ``n_in``/``n_out``, ``mean_in``/``mean_out``) are ignored.

  Args:
    path: the file.
    num_train: size of the training set the scores must index.
    dataset: the config's dataset name (checked when both it and the file's
      ``dataset`` are given).
    labels: the training labels (checked when both they and the file's
      ``labels`` are given).

  Returns:
    The `MemorizationScores`.

  Raises:
    ValueError: one line naming the problem and the fix: no path, a missing
      file, not an ``.npz`` or corrupted, no ``score``, a wrong length or
      shape, no finite score, or another dataset / training set.
  """
  if path is None or not os.fspath(path):
    raise ValueError(f"No memorization scores file given; {SCORES_HELP}.")
  path = os.path.expanduser(os.fspath(path))
  if not os.path.exists(path):
    raise ValueError(f"memorization scores file {path} does not exist; {SCORES_HELP}.")
  if os.path.isdir(path):
    raise ValueError(f"memorization scores file {path} is a folder; point "
                     "--config.forget.scores at the memorization.npz inside it.")
  redo = f"recompute it with {SCORES_COMMAND}"
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise ValueError(f"{path} is not a readable .npz scores file (corrupted or another "
                     f"format: {type(e).__name__}); {redo}.") from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise ValueError(f"{path} is a bare .npy array, not an .npz archive with a `score` array; "
                     f"save it with np.savez(path, score=...) or {redo}.")
  with data:
    if "score" not in data.files:
      held = ", ".join(sorted(data.files)) or "nothing"
      raise ValueError(f"{path} has no `score` array (it holds {held}), so it is not a "
                       f"memorization scores file; {redo}.")
    try:
      arrays = {k: data[k] for k in ("score", "stderr", "proxy", "dataset", "labels")
                if k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
      raise ValueError(f"{path} is corrupted (reading it failed: {type(e).__name__}); "
                       f"{redo}.") from e
  score = arrays["score"]
  if score.ndim != 1 or not (np.issubdtype(score.dtype, np.floating)
                             or np.issubdtype(score.dtype, np.integer)):
    raise ValueError(f"{path}: `score` must be a 1-D float array, got shape {score.shape} "
                     f"and dtype {score.dtype}; {redo}.")
  if score.shape[0] != num_train:
    raise ValueError(
        f"{path} holds {score.shape[0]} scores but the training set has {num_train} "
        "examples: the scores were made for another dataset or training set; recompute them "
        "with the same config.data (name, split_seed, validation_fraction, "
        "max_train_examples).")
  score = score.astype(np.float64)
  if not np.isfinite(score).any():
    raise ValueError(f"{path}: every score is NaN (no example has an estimate); recompute it "
                     f"with more shadow models ({SCORES_COMMAND}).")
  stderr = arrays.get("stderr")
  if stderr is not None:
    if stderr.shape != score.shape or not np.issubdtype(stderr.dtype, np.number):
      raise ValueError(f"{path}: `stderr` must be a float array of shape {score.shape}, got "
                       f"shape {stderr.shape} and dtype {stderr.dtype}; {redo}.")
    stderr = stderr.astype(np.float64)
  proxy = _string(arrays.get("proxy"))
  stored = _string(arrays.get("dataset"))
  if dataset is not None and stored is not None and stored != dataset:
    raise ValueError(f"{path} holds scores of dataset {stored!r}, but config.data.name is "
                     f"{dataset!r}; point --config.forget.scores at scores of {dataset!r} "
                     "(or use the dataset they were made for).")
  stored_labels = arrays.get("labels")
  if labels is not None and stored_labels is not None:
    labels = np.asarray(labels)
    if stored_labels.shape != labels.shape or not np.array_equal(stored_labels, labels):
      raise ValueError(
          f"{path} was made for a training set with other labels (another split: "
          "config.data.split_seed, validation_fraction or max_train_examples differ); "
          "recompute the scores with the same config.data.")
  for a in (score, stderr):
    if a is not None:
      a.setflags(write=False)
  return MemorizationScores(score=score, stderr=stderr, proxy=proxy, dataset=stored)


def validate_forget_indices(indices: Any, num_train: int) -> np.ndarray:
  """Checks forget-set indices against a training set of size `num_train`.

  Args:
    indices: 1-D integer indices.
    num_train: size of the training set.

  Returns:
    The indices as a sorted int64 array.

  Raises:
    ValueError: non-integer or non-1-D indices, an empty forget set, indices
      out of [0, num_train), duplicates, or the whole training set.
  """
  arr = np.asarray(indices)
  if arr.size == 0:
    raise ValueError(
        "Empty forget set: no training example selected; check the forget "
        "config (fraction, count or classes).")
  if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
    raise ValueError(
        f"Forget indices must be a 1-D integer array, got shape {arr.shape} "
        f"and dtype {arr.dtype}.")
  bad = arr[(arr < 0) | (arr >= num_train)]
  if bad.size:
    raise ValueError(
        f"Forget indices out of range [0, {num_train}): {bad[:5].tolist()}; "
        "they must index the training set.")
  arr = np.sort(arr.astype(np.int64))
  dups = np.unique(arr[1:][arr[1:] == arr[:-1]])
  if dups.size:
    raise ValueError(
        f"Forget indices contain duplicates: {dups[:5].tolist()}; each "
        "training example may appear once.")
  if arr.size >= num_train:
    raise ValueError(
        f"Forget set covers the whole training set ({num_train} examples); "
        "nothing would be retained, so forget fewer examples.")
  return arr


def build_forget_set(
    kind: str,
    labels: np.ndarray,
    *,
    seed: int,
    fraction: float | None = None,
    count: int | None = None,
    classes: Iterable[int] = (),
    class_a: int | None = None,
    class_b: int | None = None,
    num_examples: int | None = None,
    scores: Any = None,
    level: str | None = None,
    mid_center: str = "half",
) -> ForgetSet:
  """Builds and validates a forget set of the given kind.

  Only the arguments of `kind` are read (so a config may carry them all):
  ``iid``: count or fraction; ``non_iid``: classes and fraction;
  ``classwise``: classes; ``confusion``: class_a, class_b, num_examples;
  ``memorization``: scores, level, mid_center and count or fraction.

  Args:
    kind: one of `FORGET_KINDS`.
    labels: int labels of the training set, shape (N,).
    seed: seed of the draw.
    fraction: see `iid` / `non_iid`.
    count: see `iid`.
    classes: see `non_iid` / `classwise`.
    class_a: see `confusion`.
    class_b: see `confusion`.
    num_examples: see `confusion`.
    scores: see `memorization` (the array, e.g. `MemorizationScores.score`).
    level: see `memorization`.
    mid_center: see `memorization`.

  Returns:
    The `ForgetSet`.
  """
  labels = _as_labels(labels)
  train_labels = labels.astype(np.int32)
  if kind == "iid":
    indices = iid(labels.shape[0], seed=seed, count=count, fraction=fraction)
  elif kind == "non_iid":
    if fraction is None:
      raise ValueError("non_iid forget set needs a fraction in (0, 1].")
    indices = non_iid(labels, classes=classes, fraction=fraction, seed=seed)
  elif kind == "classwise":
    indices = classwise(labels, classes=classes)
  elif kind == "confusion":
    indices, train_labels = confusion(
        labels, class_a=class_a, class_b=class_b, num_examples=num_examples,
        seed=seed)
  elif kind == "memorization":
    if scores is None or level is None:
      raise ValueError("memorization forget set needs scores and a level; load the scores "
                       "with load_memorization_scores and pass level=high|mid|low|mixed.")
    if np.shape(scores) != labels.shape:
      raise ValueError(f"memorization scores have shape {np.shape(scores)} but the training "
                       f"set has {labels.shape[0]} examples; use scores of this training set.")
    indices = memorization(scores, level=level, seed=seed, count=count, fraction=fraction,
                           mid_center=mid_center)
  else:
    raise ValueError(
        f"Unknown forget-set kind {kind!r}; valid kinds: "
        f"{', '.join(FORGET_KINDS)}.")
  indices = validate_forget_indices(indices, labels.shape[0])
  return ForgetSet(kind=kind, indices=indices, train_labels=train_labels)


# --- persistence ----------------------------------------------------------------


def save_forget_set(path: str | os.PathLike[str], forget_set: ForgetSet,
                    meta: Mapping[str, Any]) -> None:
  """Writes a forget set to an ``.npz`` file atomically.

  The file holds ``indices``, ``train_labels``, ``kind`` and ``meta`` (a JSON
  string). It is written to a temporary file in the same directory and then
  moved over `path` with `os.replace`, so readers never see a partial file.

  Args:
    path: destination file; its directory is created if needed.
    forget_set: the forget set.
    meta: JSON-serializable description of the dataset and forget config
      (NumPy scalars and arrays are converted).
  """
  io.atomic_savez(path, indices=forget_set.indices, train_labels=forget_set.train_labels,
                  kind=np.array(forget_set.kind), meta=np.array(_meta_json(meta)))


def load_forget_set(
    path: str | os.PathLike[str]) -> tuple[ForgetSet, dict[str, Any]]:
  """Reads a forget set written by `save_forget_set`.

  Args:
    path: the ``.npz`` file.

  Returns:
    ``(forget_set, meta)``.
  """
  with np.load(os.fspath(path), allow_pickle=False) as data:
    missing = {"indices", "train_labels", "kind", "meta"} - set(data.files)
    if missing:
      raise ValueError(
          f"{os.fspath(path)} is not a forget-set file (missing "
          f"{', '.join(sorted(missing))}); delete it or use a fresh --workdir.")
    forget_set = ForgetSet(kind=str(data["kind"][()]),
                           indices=data["indices"],
                           train_labels=data["train_labels"])
    meta = json.loads(str(data["meta"][()]))
  return forget_set, meta


def load_or_build_forget_set(path: str | os.PathLike[str], kind: str,
                             labels: np.ndarray, meta: Mapping[str, Any],
                             **kwargs: Any) -> ForgetSet:
  """Loads the forget set at `path`, or builds and saves it if absent.

  Args:
    path: the ``.npz`` file (usually inside an experiment's workdir).
    kind: one of `FORGET_KINDS`.
    labels: int labels of the training set, shape (N,).
    meta: JSON-serializable description of the dataset and forget config; a
      stored forget set is reused only if its meta is equal.
    **kwargs: the arguments of `build_forget_set` (seed, fraction, ...).

  Returns:
    The `ForgetSet`.

  Raises:
    ValueError: the stored forget set was built from a different config.
  """
  if not os.path.exists(path):
    forget_set = build_forget_set(kind, labels, **kwargs)
    save_forget_set(path, forget_set, meta)
    return forget_set
  forget_set, stored = load_forget_set(path)
  wanted = json.loads(_meta_json(meta))
  labels = _as_labels(labels)
  if stored != wanted or forget_set.kind != kind or (
      forget_set.num_train != labels.shape[0]):
    keys = sorted(k for k in set(stored) | set(wanted)
                  if stored.get(k) != wanted.get(k))
    differ = f" (differs in: {', '.join(keys)})" if keys else ""
    raise ValueError(
        f"{os.fspath(path)} holds a forget set built from a different config"
        f"{differ}; use a fresh --workdir.")
  validate_forget_indices(forget_set.indices, labels.shape[0])
  return forget_set


# --- helpers --------------------------------------------------------------------


def _as_labels(labels: Any) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(
        f"labels must be a 1-D integer array, got shape {labels.shape} and "
        f"dtype {labels.dtype}.")
  if labels.size and labels.min() < 0:
    raise ValueError("labels must be non-negative class ids.")
  return labels


def _resolve_count(kind: str, num_train: int, count: int | None,
                   fraction: float | None) -> int:
  """The forget-set size from exactly one of `count` and `fraction`, in [1, num_train)."""
  if (count is None) == (fraction is None):
    raise ValueError(
        f"{kind} forget set needs exactly one of count or fraction; set one and "
        "leave the other None.")
  if fraction is not None:
    _check_fraction(fraction)
    count = int(np.floor(fraction * num_train + 0.5))
    if count == 0:
      raise ValueError(
          f"Empty forget set: fraction={fraction} of {num_train} training "
          "examples rounds to 0; use a larger fraction or a count.")
  if count <= 0 or count >= num_train:
    raise ValueError(
        f"Forget count must be in [1, {num_train}) (num_train={num_train}), "
        f"got {count}; forgetting the whole training set leaves nothing to "
        "retain.")
  return int(count)


def _as_scores(scores: Any) -> np.ndarray:
  scores = np.asarray(scores)
  if scores.ndim != 1 or not (np.issubdtype(scores.dtype, np.floating)
                              or np.issubdtype(scores.dtype, np.integer)):
    raise ValueError(
        f"memorization scores must be a 1-D float array (one per training example), got "
        f"shape {scores.shape} and dtype {scores.dtype}.")
  return scores.astype(np.float64)


def _string(value: Any) -> str | None:
  if value is None:
    return None
  arr = np.asarray(value)
  return str(arr[()] if arr.ndim == 0 else arr.reshape(-1)[0] if arr.size == 1 else arr)


def _check_fraction(fraction: float) -> None:
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"Forget fraction must be in (0, 1], got {fraction}.")


def _check_classes(classes: Iterable[int], labels: np.ndarray,
                   kind: str) -> np.ndarray:
  """Class ids as a sorted unique int array, each in [0, num_classes)."""
  arr = np.atleast_1d(np.asarray(classes if classes is not None else ()))
  if arr.size == 0:
    raise ValueError(f"{kind} forget set needs at least one class in classes.")
  if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
    raise ValueError(f"{kind} classes must be integer class ids, got {classes!r}.")
  classes = np.unique(arr.astype(np.int64))
  num_classes = int(labels.max()) + 1 if labels.size else 0
  bad = classes[(classes < 0) | (classes >= num_classes)]
  if bad.size:
    raise ValueError(
        f"Class ids out of range [0, {num_classes}): {bad.tolist()}.")
  return classes


def _finish(indices: np.ndarray, num_train: int) -> np.ndarray:
  return validate_forget_indices(np.asarray(indices, dtype=np.int64),
                                 num_train)


def _meta_json(meta: Mapping[str, Any]) -> str:
  def default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
      return obj.tolist()
    raise TypeError(f"forget-set meta value {obj!r} is not JSON-serializable")

  return json.dumps(dict(meta), sort_keys=True, default=default)
