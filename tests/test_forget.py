"""Tests of unlearn_jax.data.forget: forget-set builders and persistence."""

import os

import numpy as np
import pytest

from unlearn_jax import data

# 10 classes x 20 examples, shuffled: small and fast.
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 20))
N = LABELS.shape[0]


def _check_indices(indices, num_train=N):
  assert indices.dtype == np.int64 and indices.ndim == 1
  assert np.all(np.diff(indices) > 0)  # sorted and unique
  assert indices.min() >= 0 and indices.max() < num_train


# --- builders ---------------------------------------------------------------------


def test_iid_count_and_fraction():
  idx = data.iid(N, seed=0, count=17)
  _check_indices(idx)
  assert idx.size == 17
  assert data.iid(N, seed=0, fraction=0.1).size == 20
  assert data.iid(N, seed=0, fraction=0.0125).size == 3  # 2.5 rounds up
  np.testing.assert_array_equal(idx, data.iid(N, seed=0, count=17))
  assert not np.array_equal(idx, data.iid(N, seed=1, count=17))


def test_non_iid_fraction_per_class():
  idx = data.non_iid(LABELS, classes=[2, 5], fraction=0.25, seed=0)
  _check_indices(idx)
  np.testing.assert_array_equal(np.bincount(LABELS[idx], minlength=10),
                                [0, 0, 5, 0, 0, 5, 0, 0, 0, 0])
  np.testing.assert_array_equal(
      idx, data.non_iid(LABELS, classes=(5, 2), fraction=0.25, seed=0))
  assert not np.array_equal(
      idx, data.non_iid(LABELS, classes=[2, 5], fraction=0.25, seed=1))
  full = data.non_iid(LABELS, classes=[3], fraction=1.0, seed=0)
  np.testing.assert_array_equal(full, data.classwise(LABELS, classes=[3]))


def test_classwise():
  idx = data.classwise(LABELS, classes=[1, 7])
  _check_indices(idx)
  np.testing.assert_array_equal(idx, np.flatnonzero(np.isin(LABELS, [1, 7])))
  np.testing.assert_array_equal(data.classwise(LABELS, classes=4),
                                np.flatnonzero(LABELS == 4))


def test_confusion_swaps_exactly_the_picked_labels():
  idx, new_labels = data.confusion(LABELS, class_a=3, class_b=8,
                                   num_examples=10, seed=0)
  _check_indices(idx)
  assert idx.size == 10
  np.testing.assert_array_equal(np.bincount(LABELS[idx], minlength=10),
                                [0, 0, 0, 5, 0, 0, 0, 0, 5, 0])
  assert new_labels.shape == LABELS.shape and new_labels.dtype == np.int32
  np.testing.assert_array_equal(new_labels[idx], np.where(LABELS[idx] == 3, 8, 3))
  rest = np.setdiff1d(np.arange(N), idx)
  np.testing.assert_array_equal(new_labels[rest], LABELS[rest])
  again, _ = data.confusion(LABELS, class_a=3, class_b=8, num_examples=10,
                            seed=0)
  np.testing.assert_array_equal(idx, again)
  other, _ = data.confusion(LABELS, class_a=3, class_b=8, num_examples=10,
                            seed=1)
  assert not np.array_equal(idx, other)
  # The whole class is allowed.
  idx, _ = data.confusion(LABELS, class_a=3, class_b=8, num_examples=40, seed=0)
  assert idx.size == 40


@pytest.mark.parametrize("kind, kwargs, size", [
    ("iid", dict(fraction=0.05), 10),
    ("iid", dict(count=7, classes=[1]), 7),  # unused args are ignored
    ("non_iid", dict(classes=[0], fraction=0.5), 10),
    ("classwise", dict(classes=[0, 1, 2]), 60),
    ("confusion", dict(class_a=0, class_b=1, num_examples=6), 6),
])
def test_build_forget_set(kind, kwargs, size):
  fs = data.build_forget_set(kind, LABELS, seed=0, **kwargs)
  assert fs.kind == kind and len(fs) == size
  _check_indices(fs.indices)
  assert fs.train_labels.dtype == np.int32 and fs.train_labels.shape == (N,)
  retain = fs.retain_indices()
  _check_indices(retain)
  assert retain.size + size == N and not np.intersect1d(retain, fs.indices).size
  changed = np.flatnonzero(fs.train_labels != LABELS)
  if kind == "confusion":
    np.testing.assert_array_equal(changed, fs.indices)
  else:
    assert changed.size == 0
  again = data.build_forget_set(kind, LABELS, seed=0, **kwargs)
  np.testing.assert_array_equal(fs.indices, again.indices)
  np.testing.assert_array_equal(fs.train_labels, again.train_labels)


def test_forget_set_arrays_are_read_only():
  fs = data.build_forget_set("iid", LABELS, seed=0, count=5)
  with pytest.raises(ValueError):
    fs.indices[0] = 1


# --- errors -----------------------------------------------------------------------


@pytest.mark.parametrize("kind, kwargs, match", [
    ("bogus", {}, r"Unknown forget-set kind 'bogus'; valid kinds: iid, "
                  r"non_iid, classwise, confusion"),
    ("iid", dict(count=3, fraction=0.1), "exactly one of count or fraction"),
    ("iid", {}, "exactly one of count or fraction"),
    ("iid", dict(fraction=0.0), r"fraction must be in \(0, 1\]"),
    ("iid", dict(fraction=1.5), r"fraction must be in \(0, 1\]"),
    ("iid", dict(fraction=1.0), r"count must be in \[1, 200\)"),
    ("iid", dict(fraction=0.001), "Empty forget set"),
    ("iid", dict(count=0), r"count must be in \[1, 200\)"),
    ("iid", dict(count=-2), r"count must be in \[1, 200\)"),
    ("iid", dict(count=N), r"count must be in \[1, 200\)"),
    ("non_iid", dict(classes=[1], fraction=0.0), r"fraction must be in \(0, 1\]"),
    ("non_iid", dict(classes=[1]), "non_iid forget set needs a fraction"),
    ("non_iid", dict(classes=(), fraction=0.5), "needs at least one class"),
    ("non_iid", dict(classes=[1], fraction=0.01), "Empty forget set"),
    ("non_iid", dict(classes=[10], fraction=0.5),
     r"Class ids out of range \[0, 10\): \[10\]"),
    ("classwise", {}, "classwise forget set needs at least one class"),
    ("classwise", dict(classes=[-1]), r"Class ids out of range \[0, 10\)"),
    ("classwise", dict(classes=range(10)), "covers the whole training set"),
    ("confusion", dict(class_a=2, class_b=2, num_examples=4),
     "class_a == class_b == 2"),
    ("confusion", dict(class_a=2, class_b=12, num_examples=4),
     r"Class ids out of range \[0, 10\): \[12\]"),
    ("confusion", dict(class_a=2, class_b=3, num_examples=5),
     "must be even and >= 2"),
    ("confusion", dict(class_a=2, class_b=3, num_examples=0),
     "must be even and >= 2"),
    ("confusion", dict(class_a=2, class_b=3, num_examples=42),
     "needs 21 examples of class 2 but the training set has 20"),
    ("confusion", dict(class_a=2, num_examples=4),
     "needs class_a, class_b and num_examples"),
])
def test_build_errors(kind, kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.build_forget_set(kind, LABELS, seed=0, **kwargs)


@pytest.mark.parametrize("indices, match", [
    ([0, 5, 200], r"out of range \[0, 200\): \[200\]"),
    ([-1, 3], r"out of range \[0, 200\): \[-1\]"),
    ([4, 1, 4], r"duplicates: \[4\]"),
    ([], "Empty forget set"),
    (np.arange(N), "covers the whole training set"),
    ([0.5, 1.0], "1-D integer array"),
    ([[1, 2]], "1-D integer array"),
])
def test_validate_errors(indices, match):
  with pytest.raises(ValueError, match=match):
    data.validate_forget_indices(indices, N)


def test_validate_sorts():
  out = data.validate_forget_indices(np.array([9, 2, 5], np.int32), N)
  assert out.dtype == np.int64
  np.testing.assert_array_equal(out, [2, 5, 9])


# --- persistence ------------------------------------------------------------------

META = {"dataset": "digits", "split_seed": 0, "forget": {"kind": "confusion",
                                                          "seed": 3}}
CONFUSION = dict(seed=3, class_a=1, class_b=2, num_examples=8)


def test_save_load_round_trip(tmp_path):
  fs = data.build_forget_set("confusion", LABELS, **CONFUSION)
  path = tmp_path / "sub" / "forget.npz"
  data.save_forget_set(path, fs, {**META, "np_value": np.int64(4)})
  assert os.listdir(path.parent) == ["forget.npz"]  # no leftover tmp file
  loaded, meta = data.load_forget_set(path)
  assert loaded.kind == "confusion"
  np.testing.assert_array_equal(loaded.indices, fs.indices)
  np.testing.assert_array_equal(loaded.train_labels, fs.train_labels)
  assert loaded.indices.dtype == np.int64
  assert loaded.train_labels.dtype == np.int32
  assert meta == {**META, "np_value": 4}


def test_save_overwrites_atomically(tmp_path):
  path = tmp_path / "forget.npz"
  a = data.build_forget_set("iid", LABELS, seed=0, count=3)
  b = data.build_forget_set("iid", LABELS, seed=1, count=4)
  data.save_forget_set(path, a, META)
  data.save_forget_set(path, b, META)
  assert os.listdir(tmp_path) == ["forget.npz"]
  np.testing.assert_array_equal(data.load_forget_set(path)[0].indices,
                                b.indices)


def test_save_failure_leaves_no_tmp_file(tmp_path):
  fs = data.build_forget_set("iid", LABELS, seed=0, count=3)
  with pytest.raises(TypeError, match="not JSON-serializable"):
    data.save_forget_set(tmp_path / "forget.npz", fs, {"bad": object()})
  assert os.listdir(tmp_path) == []


def test_load_or_build_reuses_file(tmp_path):
  path = tmp_path / "forget.npz"
  first = data.load_or_build_forget_set(path, "confusion", LABELS, META,
                                        **CONFUSION)
  assert path.exists()
  mtime = path.stat().st_mtime_ns
  # A different seed is ignored: the stored set is reused when meta matches.
  second = data.load_or_build_forget_set(path, "confusion", LABELS, META,
                                         **{**CONFUSION, "seed": 99})
  assert path.stat().st_mtime_ns == mtime
  np.testing.assert_array_equal(first.indices, second.indices)
  np.testing.assert_array_equal(first.train_labels, second.train_labels)


def test_load_or_build_rejects_other_config(tmp_path):
  path = tmp_path / "forget.npz"
  data.load_or_build_forget_set(path, "confusion", LABELS, META, **CONFUSION)
  other = {**META, "split_seed": 1}
  with pytest.raises(ValueError, match=r"different config \(differs in: "
                     r"split_seed\); use a fresh --workdir"):
    data.load_or_build_forget_set(path, "confusion", LABELS, other,
                                  **CONFUSION)
  with pytest.raises(ValueError, match="use a fresh --workdir"):
    data.load_or_build_forget_set(path, "confusion", LABELS[:100], META,
                                  **CONFUSION)


def test_config_forget_count_replaces_the_fraction():
  """`--config.forget.count=N` (iid) is used as is, although `fraction` keeps its default 0.1."""
  from experiments.configs import train as train_config
  from unlearn_jax.pipelines import validate
  config = train_config.get_config("dataset=digits,model=mlp,seeds=1,oracle_seeds=1")
  config.forget.count = 37
  dataset = validate.load_data(config)
  assert len(validate.build_forget(config, dataset).indices) == 37
