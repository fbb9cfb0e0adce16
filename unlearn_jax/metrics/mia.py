"""Membership-inference attacks (MIA) used to evaluate unlearning.

Two families (``50-metrics.md`` §2), both post-hoc on model outputs with scikit-learn attackers:

* :func:`mia_loss_lr`: the loss-threshold attack of the NeurIPS 2023 Machine Unlearning challenge
  starting kit (``simple_mia``, github.com/unlearning-challenge/starting-kit) as used by SCRUB
  (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023): a logistic regression on
  the per-example loss tells forget-set examples (members) from test examples (non-members); its
  cross-validated accuracy is reported. 0.5 means indistinguishable.
* :func:`mia_svc` / :func:`mia_svc_all`: "MIA-efficacy" of L1-sparse unlearning (Jia et al., "Model
  Sparsity Can Simplify Machine Unlearning", NeurIPS 2023, ``evaluation/SVC_MIA.py``) and SalUn
  (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR
  2024): an RBF SVC trained on retain (members) vs test (non-members) features of the softmax
  output, then applied to the forget set; efficacy is the fraction of forget examples it calls
  non-members. Higher means more forgetting (a retrained model scores near its test-set rate).

Inputs are NumPy or JAX arrays; everything runs on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# scikit-learn is imported inside the attacks: ``import unlearn_jax.metrics`` stays light.

__all__ = [
  "loss_mia_dataset",
  "mia_loss_lr",
  "feature_confidence",
  "feature_entropy",
  "feature_m_entropy",
  "feature_prob",
  "feature_correctness",
  "SVC_FEATURES",
  "svc_features",
  "subsample_indices",
  "mia_svc",
  "mia_svc_all",
]

_LOG_FLOOR = 1e-30  # Song & Mittal's ``_log_value`` floor for log(0).


# ----------------------------------------------------------------------------------------------
# Validation and subsampling.


def _losses(name: str, values: Any) -> np.ndarray:
  a = np.asarray(values, dtype=np.float64)
  if a.ndim != 1:
    raise ValueError(f"{name} must be 1-D [n], got shape {a.shape}")
  if a.size == 0:
    raise ValueError(f"{name} is empty")
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{name} has non-finite values")
  return a


def _probs_labels(name: str, probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
  p = np.asarray(probs, dtype=np.float64)
  y = np.asarray(labels)
  if p.ndim != 2:
    raise ValueError(f"{name}_probs must be [n, C], got shape {p.shape}")
  if p.shape[0] == 0:
    raise ValueError(f"{name}_probs is empty")
  if y.ndim != 1 or y.shape[0] != p.shape[0]:
    raise ValueError(f"{name}_labels must be [n] with n = {p.shape[0]}, got shape {y.shape}")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name}_labels must be integers, got dtype {y.dtype}")
  if y.min() < 0 or y.max() >= p.shape[1]:
    raise ValueError(f"{name}_labels must lie in [0, {p.shape[1]}), got [{y.min()}, {y.max()}]")
  if (
    not np.all(np.isfinite(p))
    or p.min() < 0
    or p.max() > 1
    or np.any(np.abs(p.sum(axis=1) - 1) > 1e-3)
  ):
    raise ValueError(f"{name}_probs must be softmax probabilities (rows in [0, 1], sum 1)")
  return p, y


def subsample_indices(n: int, k: int, seed: int) -> np.ndarray:
  """Sorted indices of ``k`` of ``n`` items drawn without replacement (all of them if ``k >= n``).

  Uses ``numpy.random.default_rng(seed).choice(n, k, replace=False)``; sorting keeps the original
  order of the kept items.
  """
  if k >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


# ----------------------------------------------------------------------------------------------
# Loss attack (starting kit / SCRUB).


def loss_mia_dataset(
  forget_losses: Any, test_losses: Any, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """Balanced attack dataset of the loss MIA: features ``[2k, 1]`` and membership labels ``[2k]``.

  Non-members (test losses, label 0) come first, then members (forget losses, label 1), as in
  the starting kit. The larger group is subsampled without replacement to the size ``k`` of the
  smaller one with :func:`subsample_indices` (the starting kit truncates a shuffled array).

  Args:
    forget_losses: ``[n_f]`` per-example losses on the forget set (members).
    test_losses: ``[n_t]`` per-example losses on the test set (non-members).
    seed: seed of the subsampling.

  Returns:
    ``(features, labels)``: ``float64 [2k, 1]`` and ``int64 [2k]``.

  Raises:
    ValueError: on empty, non-1-D or non-finite inputs.
  """
  forget = _losses("forget_losses", forget_losses)
  test = _losses("test_losses", test_losses)
  k = min(forget.size, test.size)
  forget = forget[subsample_indices(forget.size, k, seed)]
  test = test[subsample_indices(test.size, k, seed)]
  features = np.concatenate([test, forget])[:, None]
  labels = np.concatenate([np.zeros(k, np.int64), np.ones(k, np.int64)])
  return features, labels


def mia_loss_lr(forget_losses: Any, test_losses: Any, *, n_splits: int = 5, seed: int = 0) -> float:
  """Accuracy of a logistic-regression membership-inference attack on per-example losses.

  The attack of the NeurIPS 2023 unlearning challenge starting kit (``simple_mia``) and SCRUB
  (Kurmanji et al. 2023): members are forget-set examples (label 1), non-members test examples
  (label 0), balanced by subsampling (:func:`loss_mia_dataset`); a default
  ``sklearn.linear_model.LogisticRegression`` on the single loss feature; the score is the mean
  accuracy over ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)`` folds. The
  starting kit uses ``StratifiedShuffleSplit(n_splits=10)`` (10 random 90/10 splits) instead;
  k-fold uses every example exactly once for testing (``50-metrics.md`` §2).

  0.5 means the forget set is indistinguishable from unseen data; the retrain oracle typically
  scores near 0.5, the original model above it.

  Args:
    forget_losses: ``[n_f]`` per-example losses on the forget set (see
      :func:`unlearn_jax.metrics.accuracy.softmax_cross_entropy_per_example`).
    test_losses: ``[n_t]`` per-example losses on the test set.
    n_splits: number of cross-validation folds (>= 2, at most the balanced group size).
    seed: seed of the subsampling and of the fold shuffling.

  Returns:
    Mean cross-validated attack accuracy in ``[0, 1]``.

  Raises:
    ValueError: on invalid inputs or too few examples for ``n_splits`` folds.
  """
  features, labels = loss_mia_dataset(forget_losses, test_losses, seed=seed)
  if n_splits < 2:
    raise ValueError(f"n_splits must be >= 2, got {n_splits}")
  if labels.size // 2 < n_splits:
    raise ValueError(
      f"need at least n_splits={n_splits} examples per group, got {labels.size // 2}"
    )
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import StratifiedKFold, cross_val_score

  folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
  scores = cross_val_score(LogisticRegression(), features, labels, cv=folds, scoring="accuracy")
  return float(np.mean(scores))


# ----------------------------------------------------------------------------------------------
# Softmax-output features (L1-sparse / SalUn SVC attack).


def feature_confidence(probs: Any, labels: Any) -> np.ndarray:
  """Confidence in the true class, ``p_y``, as a ``[n, 1]`` feature (Jia et al. 2023)."""
  p = np.asarray(probs, dtype=np.float64)
  y = np.asarray(labels)
  return p[np.arange(p.shape[0]), y][:, None]


def feature_entropy(probs: Any, labels: Any = None) -> np.ndarray:
  """Shannon entropy of the prediction, ``-sum_c p_c log p_c`` (``0 log 0 = 0``), as ``[n, 1]``.

  ``labels`` is ignored (accepted for a uniform feature signature).
  """
  del labels
  p = np.asarray(probs, dtype=np.float64)
  plogp = np.multiply(p, np.log(p, out=np.zeros_like(p), where=p > 0))
  return -plogp.sum(axis=1)[:, None]


def feature_m_entropy(probs: Any, labels: Any) -> np.ndarray:
  """Modified entropy of Song & Mittal (USENIX Security 2021), as a ``[n, 1]`` feature.

  ``Mentr(p, y) = -(1 - p_y) log(p_y) - sum_{c != y} p_c log(1 - p_c)``, with ``log`` floored at
  ``log(1e-30)`` as in their code. It is monotone in the correctness of the prediction, unlike the
  plain entropy. Note: the L1-sparse/SalUn ``m_entropy`` applies ``log p`` (not ``log(1 - p)``) to
  the wrong classes and indexes all rows with the whole label vector; we follow the paper.

  Args:
    probs: ``[n, C]`` softmax probabilities.
    labels: ``[n]`` integer labels.
  """
  p = np.asarray(probs, dtype=np.float64)
  y = np.asarray(labels)
  is_true = np.arange(p.shape[1]) == y[:, None]
  log_p = np.log(np.maximum(p, _LOG_FLOOR))
  log_1mp = np.log(np.maximum(1.0 - p, _LOG_FLOOR))
  terms = np.where(is_true, (1.0 - p) * log_p, p * log_1mp)
  return -terms.sum(axis=1)[:, None]


def feature_prob(probs: Any, labels: Any = None) -> np.ndarray:
  """The whole softmax vector ``[n, C]`` as the feature (``labels`` ignored)."""
  del labels
  return np.asarray(probs, dtype=np.float64)


def feature_correctness(probs: Any, labels: Any) -> np.ndarray:
  """Whether the prediction is right, ``1[argmax_c p_c == y]`` as a ``[n, 1]`` float feature."""
  p = np.asarray(probs)
  return (np.argmax(p, axis=1) == np.asarray(labels)).astype(np.float64)[:, None]


SVC_FEATURES: dict[str, Callable[[Any, Any], np.ndarray]] = {
  "correctness": feature_correctness,
  "confidence": feature_confidence,
  "entropy": feature_entropy,
  "m_entropy": feature_m_entropy,
  "prob": feature_prob,
}
"""The five softmax-output features of the L1-sparse/SalUn MIA, by name."""


def svc_features(probs: Any, labels: Any, feature: str) -> np.ndarray:
  """Feature matrix ``[n, d]`` of one of :data:`SVC_FEATURES` (``d = C`` for ``prob``, else 1)."""
  if feature not in SVC_FEATURES:
    raise ValueError(f"unknown feature {feature!r}; choose from {sorted(SVC_FEATURES)}")
  return SVC_FEATURES[feature](probs, labels)


def _svc_efficacies(
  retain: tuple[np.ndarray, np.ndarray],
  test: tuple[np.ndarray, np.ndarray],
  forget: tuple[np.ndarray, np.ndarray],
  features: tuple[str, ...],
  seed: int,
) -> dict[str, float]:
  from sklearn.svm import SVC

  (rp, ry), (tp, ty), (fp, fy) = retain, test, forget
  if not rp.shape[1] == tp.shape[1] == fp.shape[1]:
    raise ValueError(
      f"different numbers of classes: retain {rp.shape[1]}, test {tp.shape[1]}, "
      f"forget {fp.shape[1]}"
    )
  keep = subsample_indices(rp.shape[0], tp.shape[0], seed)
  rp, ry = rp[keep], ry[keep]
  membership = np.concatenate([np.ones(rp.shape[0]), np.zeros(tp.shape[0])])
  out = {}
  for name in features:
    x_shadow = np.concatenate([svc_features(rp, ry, name), svc_features(tp, ty, name)])
    attacker = SVC(C=3, gamma="auto", kernel="rbf").fit(x_shadow, membership)
    out[name] = float(np.mean(attacker.predict(svc_features(fp, fy, name)) == 0))
  return out


def mia_svc(
  retain_probs: Any,
  retain_labels: Any,
  test_probs: Any,
  test_labels: Any,
  forget_probs: Any,
  forget_labels: Any,
  *,
  feature: str = "confidence",
  seed: int = 0,
) -> float:
  """MIA-efficacy of L1-sparse / SalUn: fraction of forget examples an SVC calls non-members.

  An ``SVC(C=3, gamma='auto', kernel='rbf')`` is fit on features (:func:`svc_features`) of the
  retain set (members, label 1; subsampled without replacement to the test-set size with
  :func:`subsample_indices`, ``seed``) and of the test set (non-members, label 0), then predicts
  the forget set; efficacy = fraction predicted 0 (Jia et al. 2023, ``SVC_MIA``; Fan et al. 2024).
  SalUn keeps the first ``|test|`` retain examples instead of a random subset. ``confidence`` is
  the headline feature (what the papers report; ``50-metrics.md`` §2).

  Args:
    retain_probs: ``[n_r, C]`` softmax probabilities on the retain set; ``retain_labels [n_r]``.
    retain_labels: ``[n_r]`` integer labels.
    test_probs: ``[n_t, C]`` softmax probabilities on the test set.
    test_labels: ``[n_t]`` integer labels.
    forget_probs: ``[n_f, C]`` softmax probabilities on the forget set.
    forget_labels: ``[n_f]`` integer labels.
    feature: one of ``correctness``, ``confidence``, ``entropy``, ``m_entropy``, ``prob``.
    seed: seed of the retain subsampling.

  Returns:
    MIA-efficacy in ``[0, 1]`` (higher = the forget set looks more like unseen data).

  Raises:
    ValueError: on empty inputs, mismatched lengths, labels out of range, non-probabilities or an
      unknown feature.
  """
  if feature not in SVC_FEATURES:
    raise ValueError(f"unknown feature {feature!r}; choose from {sorted(SVC_FEATURES)}")
  return _svc_efficacies(
    _probs_labels("retain", retain_probs, retain_labels),
    _probs_labels("test", test_probs, test_labels),
    _probs_labels("forget", forget_probs, forget_labels),
    (feature,),
    seed,
  )[feature]


def mia_svc_all(
  retain_probs: Any,
  retain_labels: Any,
  test_probs: Any,
  test_labels: Any,
  forget_probs: Any,
  forget_labels: Any,
  *,
  seed: int = 0,
) -> dict[str, float]:
  """:func:`mia_svc` for all five features (same retain subsample), as ``{feature: efficacy}``."""
  return _svc_efficacies(
    _probs_labels("retain", retain_probs, retain_labels),
    _probs_labels("test", test_probs, test_labels),
    _probs_labels("forget", forget_probs, forget_labels),
    tuple(SVC_FEATURES),
    seed,
  )
