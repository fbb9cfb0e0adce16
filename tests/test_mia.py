"""Membership-inference attacks against direct scikit-learn computations."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC

from unlearn_jax import metrics


def _softmax(z):
  e = np.exp(z - z.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Loss attack.


def test_loss_lr_equals_direct_sklearn_on_balanced_groups():
  rng = np.random.default_rng(0)
  forget = rng.exponential(0.3, size=60)
  test = rng.exponential(1.0, size=60)
  # Equal sizes: no subsampling, so the attack set is simply [test; forget] with labels 0/1.
  x = np.concatenate([test, forget]).reshape(-1, 1)
  y = np.array([0] * 60 + [1] * 60)
  folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
  expected = cross_val_score(LogisticRegression(), x, y, cv=folds, scoring="accuracy").mean()
  assert metrics.mia_loss_lr(forget, test, n_splits=5, seed=3) == pytest.approx(expected)


def test_loss_lr_dataset_subsamples_the_larger_group():
  rng = np.random.default_rng(1)
  forget = rng.normal(size=200)
  test = rng.normal(size=50)
  x, y = metrics.loss_mia_dataset(forget, test, seed=7)
  assert x.shape == (100, 1) and y.tolist() == [0] * 50 + [1] * 50
  np.testing.assert_array_equal(x[:50, 0], test)  # the smaller group is kept whole, in order.
  kept = x[50:, 0]
  assert len(np.unique(kept)) == 50 and np.isin(kept, forget).all()
  positions = [int(np.flatnonzero(forget == v)[0]) for v in kept]
  assert np.all(np.diff(positions) > 0)  # kept in their original order.
  # And the attack is the direct sklearn computation on that dataset.
  folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=7)
  expected = cross_val_score(LogisticRegression(), x, y, cv=folds).mean()
  assert metrics.mia_loss_lr(forget, test, seed=7) == pytest.approx(expected)
  # Deterministic given the seed.
  assert metrics.mia_loss_lr(forget, test, seed=7) == metrics.mia_loss_lr(forget, test, seed=7)


def test_loss_lr_sanity_separable_and_identical():
  rng = np.random.default_rng(2)
  separable = metrics.mia_loss_lr(rng.uniform(0, 0.1, 200), rng.uniform(2, 3, 200))
  same = metrics.mia_loss_lr(rng.exponential(1.0, 400), rng.exponential(1.0, 400))
  assert separable > 0.98
  assert abs(same - 0.5) < 0.08


@pytest.mark.parametrize(
  "forget, test",
  [
    (np.array([]), np.ones(10)),
    (np.ones(10), np.array([])),
    (np.ones((5, 2)), np.ones(10)),
    (np.array([1.0, np.nan, 2.0, 3, 4, 5]), np.ones(10)),
    (np.ones(3), np.ones(10)),  # fewer members than folds.
  ],
)
def test_loss_lr_rejects_bad_inputs(forget, test):
  with pytest.raises(ValueError):
    metrics.mia_loss_lr(forget, test, n_splits=5)


# ---------------------------------------------------------------------------------------------
# SVC attack (MIA-efficacy).


def _fake_split(rng, n, num_classes, sharpness):
  labels = rng.integers(0, num_classes, size=n)
  logits = rng.normal(size=(n, num_classes))
  logits[np.arange(n), labels] += sharpness
  return _softmax(logits), labels


def _hand_features(probs, labels):
  n = len(labels)
  p_y = probs[np.arange(n), labels]
  others = np.ones_like(probs, dtype=bool)
  others[np.arange(n), labels] = False
  entropy = -np.array([sum(q * np.log(q) for q in row if q > 0) for row in probs])
  m_entropy = -(1 - p_y) * np.log(np.maximum(p_y, 1e-30)) - np.array(
    [
      np.sum(row[mask] * np.log(np.maximum(1 - row[mask], 1e-30)))
      for row, mask in zip(probs, others, strict=False)
    ]
  )
  return {
    "confidence": p_y[:, None],
    "entropy": entropy[:, None],
    "m_entropy": m_entropy[:, None],
    "prob": probs,
    "correctness": (probs.argmax(axis=1) == labels).astype(float)[:, None],
  }


def test_feature_functions_match_hand_computation():
  rng = np.random.default_rng(3)
  probs, labels = _fake_split(rng, 30, 4, 2.0)
  probs[0] = [1.0, 0.0, 0.0, 0.0]  # exercises 0 log 0 and log(1 - 1).
  labels[0] = 0
  hand = _hand_features(probs, labels)
  for name, expected in hand.items():
    np.testing.assert_allclose(
      metrics.svc_features(probs, labels, name), expected, rtol=1e-12, err_msg=name
    )


def test_svc_equals_direct_sklearn_for_every_feature():
  rng = np.random.default_rng(4)
  retain = _fake_split(rng, 80, 5, 4.0)  # confident: members.
  test = _fake_split(rng, 80, 5, 1.0)  # unsure: non-members.
  forget = _fake_split(rng, 40, 5, 2.5)
  # |retain| == |test|: no subsampling, so the shadow set is [retain; test] with labels 1/0.
  got = metrics.mia_svc_all(*retain, *test, *forget, seed=0)
  hand_r, hand_t, hand_f = (_hand_features(*s) for s in (retain, test, forget))
  for name in ("confidence", "entropy", "m_entropy", "prob", "correctness"):
    svc = SVC(C=3, gamma="auto", kernel="rbf")
    svc.fit(np.concatenate([hand_r[name], hand_t[name]]), np.r_[np.ones(80), np.zeros(80)])
    expected = np.mean(svc.predict(hand_f[name]) == 0)
    assert got[name] == pytest.approx(expected), name
    assert metrics.mia_svc(*retain, *test, *forget, feature=name) == pytest.approx(expected)


def test_svc_sanity_member_like_and_non_member_like_forget_sets():
  rng = np.random.default_rng(5)
  retain = _fake_split(rng, 300, 10, 6.0)
  test = _fake_split(rng, 100, 10, 0.5)  # retain gets subsampled to 100.
  member_like = _fake_split(rng, 60, 10, 6.0)
  unseen_like = _fake_split(rng, 60, 10, 0.5)
  assert metrics.mia_svc(*retain, *test, *member_like) < 0.2
  assert metrics.mia_svc(*retain, *test, *unseen_like) > 0.8
  # Subsampling is seeded: same seed, same number.
  assert metrics.mia_svc(*retain, *test, *unseen_like, seed=1) == metrics.mia_svc(
    *retain, *test, *unseen_like, seed=1
  )


def test_svc_rejects_bad_inputs():
  rng = np.random.default_rng(6)
  good = _fake_split(rng, 20, 3, 1.0)
  probs, labels = good
  with pytest.raises(ValueError):  # empty forget set.
    metrics.mia_svc(*good, *good, np.zeros((0, 3)), np.zeros(0, int))
  with pytest.raises(ValueError):  # mismatched lengths.
    metrics.mia_svc(probs, labels[:-1], *good, *good)
  with pytest.raises(ValueError):  # logits instead of probabilities.
    metrics.mia_svc(np.log(probs) * 3, labels, *good, *good)
  with pytest.raises(ValueError):  # different numbers of classes.
    metrics.mia_svc(*good, *good, *_fake_split(rng, 20, 4, 1.0))
  with pytest.raises(ValueError):
    metrics.mia_svc(*good, *good, *good, feature="loss")
