"""Forget-set builders: which training examples an unlearning method must forget.

Four kinds, as used by the papers this library reimplements:

* ``iid``: a uniformly random subset of the training set (a count or a
  fraction of it).
* ``non_iid``: a random ``fraction`` of each of the listed classes.
* ``classwise``: every example of the listed classes.
* ``confusion``: ``num_examples // 2`` examples of class A and as many of
  class B whose labels are swapped (A->B, B->A) before training; the model is
  trained on the swapped labels and must then forget them. These swapped
  labels are the forget set's "given labels" (``train_labels[indices]``).

Builders are pure functions of their arguments and ``seed``
(``np.random.default_rng(seed)``) and return sorted, unique int64 indices into
the training set. A `ForgetSet` also carries the labels the model trains with,
and is saved next to an experiment (`load_or_build_forget_set`) so that every
run in a workdir uses the same forget set.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable, Mapping

import numpy as np

from unlearn_jax import io

FORGET_KINDS = ("iid", "non_iid", "classwise", "confusion")


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
  if (count is None) == (fraction is None):
    raise ValueError(
        "iid forget set needs exactly one of count or fraction; set one and "
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
) -> ForgetSet:
  """Builds and validates a forget set of the given kind.

  Only the arguments of `kind` are read (so a config may carry them all):
  ``iid``: count or fraction; ``non_iid``: classes and fraction;
  ``classwise``: classes; ``confusion``: class_a, class_b, num_examples.

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
