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


# --- memorization (RUM) -------------------------------------------------------------

from unlearn_jax.data import forget as fg  # noqa: E402

# 12 examples, 10 finite scores. Descending: 0.9 (0, 9: a tie), 0.75 (5), 0.625 (10),
# 0.5 (3, 4), 0.375 (11), 0.25 (7), 0.1 (2), 0.0 (6). Distance to 0.5: 0 (3, 4),
# 0.125 (10, 11: a tie), 0.25 (5, 7), 0.4 (0, 2, 9), 0.5 (6). The median of the finite scores
# is 0.5 too. Dyadic values, so the distances are exact.
MEM = np.array([0.9, np.nan, 0.1, 0.5, 0.5, 0.75, 0.0, 0.25, np.nan, 0.9, 0.625, 0.375])


def _tie_winner(options, seed, num_train=MEM.size):
  """The member of a tie that the seeded key ranks first (the documented rule)."""
  key = np.random.default_rng(seed).permutation(num_train)
  return min(options, key=lambda i: key[i])


@pytest.mark.parametrize("level, count, expected", [
    ("high", 3, [0, 5, 9]),
    ("high", 4, [0, 5, 9, 10]),
    ("low", 3, [2, 6, 7]),
    ("low", 4, [2, 6, 7, 11]),
    ("mid", 4, [3, 4, 10, 11]),
    ("mixed", 5, [0, 3, 4, 6, 9]),             # 5 = 3*1 + 2: high 2, mid 2, low 1
    ("mixed", 10, [0, 2, 3, 4, 5, 6, 7, 9, 10, 11]),  # every finite one: high 4, low 3, mid 3
])
def test_memorization_levels(level, count, expected):
  for seed in (0, 1, 2):
    idx = fg.memorization(MEM, level=level, count=count, seed=seed)
    _check_indices(idx, MEM.size)
    np.testing.assert_array_equal(idx, expected)
  assert not {1, 8} & set(idx.tolist())  # NaN: never selected


@pytest.mark.parametrize("level, count, fixed, tie", [
    ("high", 1, [], (0, 9)),           # 0.9 twice
    ("mid", 3, [3, 4], (10, 11)),      # 0.625 and 0.375, both 0.125 from 0.5
    ("mixed", 3, [6], None),           # high 1 of (0, 9), mid 1 of (3, 4), low 6
    ("mixed", 4, [0, 6, 9], (3, 4)),   # 4 = 3*1 + 1: high 2, mid 1, low 1
])
def test_memorization_ties_follow_the_seeded_key(level, count, fixed, tie):
  seen = set()
  for seed in range(12):
    idx = fg.memorization(MEM, level=level, count=count, seed=seed)
    np.testing.assert_array_equal(idx, fg.memorization(MEM, level=level, count=count, seed=seed))
    if tie is None:  # two ties at once
      want = sorted(fixed + [_tie_winner((0, 9), seed), _tie_winner((3, 4), seed)])
    else:
      want = sorted(fixed + [_tie_winner(tie, seed)])
    np.testing.assert_array_equal(idx, want)
    seen.add(tuple(idx.tolist()))
  assert len(seen) > 1  # the seed does break the tie


def test_memorization_mid_center_median():
  scores = np.array([0.0, 0.1, 0.2, 0.3, 0.9, np.nan])
  assert fg.memorization(scores, level="mid", count=1, seed=0).tolist() == [3]  # |0.3 - 0.5|
  assert fg.memorization(scores, level="mid", count=1, seed=0,
                         mid_center="median").tolist() == [2]  # the median of the finite: 0.2
  # Integer scores (e.g. counts) work; the center is then the median of a proxy's scale.
  assert fg.memorization(np.array([1, 5, 8, 40, 50]), level="mid", count=1, seed=0,
                         mid_center="median").tolist() == [2]


def test_memorization_count_and_fraction():
  np.testing.assert_array_equal(fg.memorization(MEM, level="low", fraction=0.25, seed=0),
                                fg.memorization(MEM, level="low", count=3, seed=0))
  assert fg.memorization(MEM, level="high", fraction=0.3, seed=0).size == 4  # 3.6 -> 4
  big = np.random.default_rng(0).random(500)
  for level in fg.MEMORIZATION_LEVELS:
    idx = fg.memorization(big, level=level, count=100, seed=0)
    _check_indices(idx, 500)
    assert idx.size == 100
  top = fg.memorization(big, level="high", count=100, seed=0)
  assert big[top].min() > np.delete(big, top).max()
  mixed = fg.memorization(big, level="mixed", count=100, seed=0)
  high = fg.memorization(big, level="high", count=34, seed=0)
  low = fg.memorization(big, level="low", count=33, seed=0)
  assert set(high) | set(low) <= set(mixed)  # 100 = 3*33 + 1: high 34, mid 33, low 33


@pytest.mark.parametrize("kwargs, match", [
    (dict(level="high", count=3, fraction=0.25), "exactly one of count or fraction"),
    (dict(level="high"), "memorization forget set needs exactly one of count or fraction"),
    (dict(level="extreme", count=3), r"Unknown memorization level 'extreme'; choose one of "
                                      "high, mid, low, mixed"),
    (dict(level="mid", count=3, mid_center="mean"), "Unknown memorization mid_center 'mean'"),
    (dict(level="high", count=11), r"needs 11 examples with a finite score, but only 10 of "
                                   r"the 12 have one .*forget at most 10"),
    (dict(level="mixed", fraction=1.0), r"count must be in \[1, 12\)"),
    (dict(level="low", count=0), r"count must be in \[1, 12\)"),
    (dict(level="low", fraction=0.01), "Empty forget set"),
    (dict(level="low", fraction=1.5), r"fraction must be in \(0, 1\]"),
])
def test_memorization_errors(kwargs, match):
  with pytest.raises(ValueError, match=match) as e:
    fg.memorization(MEM, seed=0, **kwargs)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("scores, match", [
    (np.full(5, np.nan), "No finite memorization score among the 5 examples"),
    (np.zeros((3, 4)), "1-D float array"),
    (np.array(["a", "b", "c"]), "1-D float array"),
])
def test_memorization_bad_scores(scores, match):
  with pytest.raises(ValueError, match=match):
    fg.memorization(scores, level="high", count=1, seed=0)


def test_build_forget_set_memorization():
  labels = np.arange(12) % 3
  fs = data.build_forget_set("memorization", labels, seed=0, scores=MEM, level="low", count=4)
  assert fs.kind == "memorization"
  np.testing.assert_array_equal(fs.indices, [2, 6, 7, 11])
  np.testing.assert_array_equal(fs.train_labels, labels)  # labels are not changed
  with pytest.raises(ValueError, match="needs scores and a level"):
    data.build_forget_set("memorization", labels, seed=0, level="low", count=4)
  with pytest.raises(ValueError, match=r"scores have shape \(12,\) but the training set has 6"):
    data.build_forget_set("memorization", labels[:6], seed=0, scores=MEM, level="low", count=2)


# The scores file.


def _scores_file(path, **arrays):
  np.savez(path, **arrays)
  return path


def test_load_memorization_scores(tmp_path):
  path = _scores_file(tmp_path / "memorization.npz", score=MEM.astype(np.float32),
                      stderr=np.full(12, 0.05), proxy="feldman_zhang", dataset="digits",
                      labels=np.arange(12) % 3)
  s = fg.load_memorization_scores(path, 12, dataset="digits", labels=np.arange(12) % 3)
  assert s.score.dtype == np.float64 and s.score.shape == (12,)
  np.testing.assert_array_equal(np.isnan(s.score), np.isnan(MEM))
  assert s.stderr.shape == (12,) and s.proxy == "feldman_zhang" and s.dataset == "digits"
  with pytest.raises(ValueError):
    s.score[0] = 1.0
  minimal = fg.load_memorization_scores(_scores_file(tmp_path / "m.npz", score=MEM), 12)
  assert minimal.stderr is None and minimal.proxy is None and minimal.dataset is None
  assert minimal.sha256() == fg.scores_sha256(MEM) != fg.scores_sha256(MEM[::-1])


def _corrupt(path):
  good = tmp = path.with_suffix(".tmp.npz")
  np.savez(good, score=MEM)
  path.write_bytes(good.read_bytes()[:40])  # a torn write
  tmp.unlink()
  return path


@pytest.mark.parametrize("make, kwargs, match", [
    (lambda p: p, {}, r"does not exist; run `python -m experiments.memorization "
                      r"--config=experiments/configs/memorization.py --workdir=DIR` first, then "
                      r"point --config.forget.scores at DIR/memorization.npz"),
    (lambda p: p.parent, {}, "is a folder; point --config.forget.scores at the memorization.npz"),
    (lambda p: (p.write_bytes(b"PK\x03\x04 not a zip"), p)[1], {},
     r"not a readable .npz scores file \(corrupted or another format: BadZipFile\); recompute"),
    (lambda p: (p.write_bytes(b"garbage, not numpy"), p)[1], {}, "not a readable .npz"),
    (_corrupt, {}, "corrupted"),
    (lambda p: (np.save(p.with_suffix(".npy"), MEM), p.with_suffix(".npy"))[1], {},
     "bare .npy array, not an .npz archive"),
    (lambda p: _scores_file(p, memorization=MEM), {},
     r"has no `score` array \(it holds memorization\), so it is not a memorization scores file"),
    (lambda p: _scores_file(p, score=MEM[:10]), {},
     r"holds 10 scores but the training set has 12 examples: the scores were made for another "
     r"dataset or training set; recompute"),
    (lambda p: _scores_file(p, score=MEM.reshape(3, 4)), {}, "`score` must be a 1-D float array"),
    (lambda p: _scores_file(p, score=np.full(12, np.nan)), {},
     "every score is NaN .*recompute it with more shadow models"),
    (lambda p: _scores_file(p, score=MEM, stderr=np.ones(3)), {}, "`stderr` must be a float"),
    (lambda p: _scores_file(p, score=MEM, dataset="mnist5k"), dict(dataset="digits"),
     r"holds scores of dataset 'mnist5k', but config.data.name is 'digits'; point "
     "--config.forget.scores at scores of 'digits'"),
    (lambda p: _scores_file(p, score=MEM, labels=np.zeros(12, int)),
     dict(labels=np.arange(12) % 3), "made for a training set with other labels"),
])
def test_load_memorization_scores_errors(tmp_path, make, kwargs, match):
  path = make(tmp_path / "memorization.npz")
  with pytest.raises(ValueError, match=match) as e:
    fg.load_memorization_scores(path, 12, **kwargs)
  assert "\n" not in str(e.value) and ";" in str(e.value)


def test_load_memorization_scores_unset():
  with pytest.raises(ValueError, match="No memorization scores file given; run"):
    fg.load_memorization_scores(None, 12)


# Through the pipeline's own construction (validate.build_forget / plan / experiment.setup).


def _memorization_config(tmp_path, **forget):
  from experiments.configs import train as train_config
  from unlearn_jax.pipelines import validate
  config = train_config.get_config(
      "dataset=digits,model=mlp,seeds=1,oracle_seeds=1,forget=memorization")
  dataset = validate.load_data(config)
  n = len(dataset.train.y)
  score = np.linspace(0.0, 1.0, n)
  score[::7] = np.nan
  path = tmp_path / "memorization.npz"
  np.savez(path, score=score, dataset="digits", labels=dataset.train.y)
  config.forget.scores = str(path)
  for k, v in forget.items():
    config.forget[k] = v
  return config, dataset, score


def test_config_memorization_forget_set(tmp_path):
  from unlearn_jax.pipelines import validate
  config, dataset, score = _memorization_config(tmp_path, count=37)
  assert (config.forget.level, config.forget.mid_center) == ("high", "half")
  fs = validate.build_forget(config, dataset)
  assert fs.kind == "memorization" and len(fs) == 37
  finite = np.flatnonzero(np.isfinite(score))
  np.testing.assert_array_equal(fs.indices, finite[-37:])  # increasing scores: the last 37
  config.forget.count = None  # the fraction (0.1) then counts
  config.forget.level = "mixed"
  fs = validate.build_forget(config, dataset)
  np.testing.assert_array_equal(fs.indices, fg.memorization(
      score, level="mixed", fraction=0.1, seed=0))
  assert len(fs) == round(0.1 * len(score))
  meta = validate.plan(config).forget_meta
  assert meta["forget"]["level"] == "mixed" and meta["forget"]["scores"] == config.forget.scores
  assert meta["memorization_scores_sha256"] == fg.scores_sha256(score)
  # The other kinds' config and meta are unchanged (old workdirs are still reused).
  from experiments.configs import train as train_config
  iid = train_config.get_config("dataset=digits,model=mlp,seeds=1,oracle_seeds=1")
  assert "level" not in iid.forget and set(validate.forget_meta(iid)) == {"data", "forget"}


@pytest.mark.parametrize("change, match", [
    (dict(level="extreme"), "config.forget.level must be one of high, mid, low, mixed"),
    (dict(mid_center="mean"), "config.forget.mid_center must be one of half, median"),
    (dict(scores=None), "config.forget.scores is unset .*; run `python -m experiments.memo"),
    (dict(scores="/nonexistent/memorization.npz"), "config.forget.scores: memorization scores "
                                                   "file /nonexistent/memorization.npz does not"),
    (dict(count=100000), r"config.forget: Forget count must be in \[1, "),
    (dict(fraction=0.0), "config.forget.fraction must be a finite number in"),
    (dict(count=0), "config.forget.count must be an integer >= 1"),
])
def test_config_memorization_errors(tmp_path, change, match):
  from unlearn_jax.errors import ConfigError
  from unlearn_jax.pipelines import validate
  config, _, _ = _memorization_config(tmp_path, **change)
  with pytest.raises(ConfigError, match=match) as e:
    validate.plan(config)
  assert "\n" not in str(e.value)


def test_config_memorization_kind_without_its_fields():
  from experiments.configs import train as train_config
  from unlearn_jax.errors import ConfigError
  from unlearn_jax.pipelines import validate
  config = train_config.get_config("dataset=digits,model=mlp,seeds=1,oracle_seeds=1")
  config.forget.kind = "memorization"
  with pytest.raises(ConfigError, match="config.forget.level is missing .*; pass "
                     "forget=memorization in the config argument"):
    validate.plan(config)


def test_workdir_reuse_sees_other_scores_or_level(tmp_path):
  """A workdir's forget set records the level, the scores path and the scores' digest: a
  rewritten scores file or another level is refused once the workdir holds results."""
  from unlearn_jax.errors import WorkdirError
  from unlearn_jax.pipelines import experiment
  config, _, score = _memorization_config(tmp_path, count=20)
  wd = tmp_path / "wd"
  exp = experiment.setup(config, wd)
  stored, meta = data.load_forget_set(wd / "forget_set.npz")
  np.testing.assert_array_equal(stored.indices, exp.forget_set.indices)
  assert meta["forget"]["level"] == "high"
  assert meta["memorization_scores_sha256"] == fg.scores_sha256(score)
  experiment.setup(config, wd)  # the same config and file: reused
  (wd / "models").mkdir()
  (wd / "models" / "marker").write_text("a result")
  np.savez(config.forget.scores, score=score[::-1].copy(), dataset="digits")  # same path
  with pytest.raises(WorkdirError, match="forget_set.npz holds a forget set built from a "
                     "different config"):
    experiment.setup(config, wd)
  np.savez(config.forget.scores, score=score, dataset="digits")
  experiment.setup(config, wd)
  config.forget.level = "low"
  with pytest.raises(WorkdirError, match=r"different config \(sections forget differ\)"):
    experiment.setup(config, wd)
