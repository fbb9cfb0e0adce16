"""Memorisation scores of training examples, for memorisation-based forget sets.

* :func:`feldman_zhang`: the subsampled estimator of V. Feldman and C. Zhang, "What Neural Networks
  Memorize and Why: Discovering the Long Tail via Influence Estimation", NeurIPS 2020
  (arXiv:2008.03703). ``K`` models are trained on random subsets of the training set; the
  memorisation of example ``j`` is its mean correctness under the models that trained on it minus
  its mean correctness under the models that did not. RUM (K. Zhao, M. Kurmanji, G.-O. Bărbulescu,
  E. Triantafillou, P. Triantafillou, "What makes unlearning hard and what to do about it",
  NeurIPS 2024, arXiv:2406.01257) computes it this way in
  ``surgical_plugins/cifar_infl_mem_torch.py`` of github.com/kairanzhao/RUM (400 ResNet-18 on random
  70 % subsets of CIFAR-10) and builds its high/mid/low forget sets from it (``55-shadow-eval.md``
  §3).
* :func:`confidence_proxy`: RUM's cheap proxy, the "learning-event" confidence of K. Zhao et al.,
  "Scalability of memorization-based machine unlearning" (arXiv:2410.16516,
  ``memorization_proxy/learning_events.py``): the true-class softmax probability averaged over the
  training epochs. Examples learnt late or never (low proxy) are the memorised ones.
* :func:`spearman`: Spearman rank correlation, to compare a proxy with the Feldman-Zhang score.

Inputs are NumPy or JAX arrays with a leading model axis; everything runs in ``float64`` on the
host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["feldman_zhang", "confidence_proxy", "spearman"]


def _model_masks(correct: Any, keep: Any) -> tuple[np.ndarray, np.ndarray]:
  c = np.asarray(correct)
  k = np.asarray(keep)
  if c.ndim != 2:
    raise ValueError(f"correct must be [K, n], got shape {c.shape}")
  if k.shape != c.shape:
    raise ValueError(f"keep must have the shape of correct {c.shape}, got {k.shape}")
  if k.dtype != np.bool_:
    if not np.all((k == 0) | (k == 1)):
      raise ValueError("keep must be boolean (or 0/1)")
    k = k.astype(bool)
  c = c.astype(np.float64)
  if not np.all(np.isfinite(c)) or c.min(initial=0.0) < 0 or c.max(initial=0.0) > 1:
    raise ValueError("correct must hold values in [0, 1] (booleans, 0/1 or mean correctness)")
  return c, k


def _masked_mean_var(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per column: count, mean and sample variance (``ddof=1``) of the masked entries (or NaN)."""
  count = mask.sum(axis=0)
  total = np.where(mask, x, 0.0).sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    sq = np.where(mask, (x - np.where(count > 0, mean, 0.0)) ** 2, 0.0).sum(axis=0)
    var = np.where(count > 1, sq / np.maximum(count - 1, 1), np.nan)
  return count.astype(np.int64), mean, var


def feldman_zhang(correct: Any, keep: Any) -> dict[str, np.ndarray]:
  """Feldman-Zhang memorisation estimate per example, with its standard error.

  ``mem_j = mean_{k: keep[k, j]} correct[k, j] - mean_{k: not keep[k, j]} correct[k, j]``
  (the subsampled estimator of Feldman & Zhang 2020; RUM's ``cifar_infl_mem_torch.py``, whose
  ``_masked_avg`` gives the same means). Near 1: the example is
  only right when it was trained on (memorised); near 0: it is right (or wrong) either way.

  The standard error is that of a difference of two independent means,
  ``sqrt(var_in / n_in + var_out / n_out)`` with sample variances (``ddof=1``).

  NaN handling (the reference code instead divides by ``max(count, 1e-10)``, i.e. reads a missing
  group's mean as 0): ``score`` (and ``mean_in``/``mean_out``) is NaN for an example with no "in"
  or no "out" model; ``stderr`` is NaN when either group has fewer than 2 models.

  Args:
    correct: ``[K, n]`` booleans (or 0/1, or mean correctness over augmentations in ``[0, 1]``):
      whether model ``k`` classifies example ``j`` correctly.
    keep: ``[K, n]`` booleans: whether model ``k`` was trained on example ``j``.

  Returns:
    ``{"score", "stderr", "mean_in", "mean_out"}`` float64 ``[n]`` and ``{"n_in", "n_out"}``
    int64 ``[n]`` (numbers of models that did / did not train on each example).

  Raises:
    ValueError: on mismatched shapes, non-boolean ``keep`` or correctness outside ``[0, 1]``.
  """
  c, k = _model_masks(correct, keep)
  n_in, mean_in, var_in = _masked_mean_var(c, k)
  n_out, mean_out, var_out = _masked_mean_var(c, ~k)
  with np.errstate(invalid="ignore", divide="ignore"):
    stderr = np.sqrt(var_in / n_in + var_out / n_out)
  return {
    "score": mean_in - mean_out,
    "stderr": stderr,
    "mean_in": mean_in,
    "mean_out": mean_out,
    "n_in": n_in,
    "n_out": n_out,
  }


def confidence_proxy(probs_per_epoch: Any, labels: Any, *, keep: Any = None) -> np.ndarray:
  """Learning-event confidence: the true-class probability averaged over training epochs.

  ``proxy_j = mean_e p_e(y_j | x_j)``, the softmax probability of the true class after each
  training epoch ``e``, averaged over the epochs (Zhao et al., arXiv:2410.16516, "confidence" of
  ``memorization_proxy/learning_events.py`` in kairanzhao/RUM). Low values mark examples learnt
  late or never, i.e. memorised ones: the proxy is *negatively* correlated with
  :func:`feldman_zhang` (check with :func:`spearman`). RUM's mid group is then the examples closest
  to the median of the proxy.

  Input convention: softmax probabilities with a trailing class axis (not logits, not true-class
  probabilities), logged after each epoch, e.g. with ``fit(on_epoch_end=...)``.

  * ``[E, n, C]``: one model, ``E`` epochs.
  * ``[K, E, n, C]``: a stacked group of ``K`` models; the per-model proxies are averaged over the
    models, all of them, or with ``keep`` only over the models that trained on each example
    (NaN where none did).

  Args:
    probs_per_epoch: ``[E, n, C]`` or ``[K, E, n, C]`` softmax probabilities.
    labels: ``[n]`` integer labels.
    keep: optional ``[K, n]`` booleans (only with the 4-D input): model ``k`` trained on ``j``.

  Returns:
    ``float64 [n]``.

  Raises:
    ValueError: on wrong shapes, labels out of range or a ``keep`` with a 3-D input.
  """
  p = np.asarray(probs_per_epoch)
  y = np.asarray(labels)
  if p.ndim not in (3, 4):
    raise ValueError(f"probs_per_epoch must be [E, n, C] or [K, E, n, C], got shape {p.shape}")
  if p.shape[-3] == 0:
    raise ValueError("probs_per_epoch has no epochs")
  if not np.issubdtype(y.dtype, np.integer) or y.shape != (p.shape[-2],):
    raise ValueError(f"labels must be integers of shape [{p.shape[-2]}], got {y.dtype} {y.shape}")
  if y.size and (y.min() < 0 or y.max() >= p.shape[-1]):
    raise ValueError(f"labels must lie in [0, {p.shape[-1]}), got [{y.min()}, {y.max()}]")
  idx = np.broadcast_to(y[:, None], (*p.shape[:-1], 1))
  true_p = np.take_along_axis(p, idx, axis=-1)[..., 0].astype(np.float64)  # [(K,) E, n]
  per_model = true_p.mean(axis=-2)  # [(K,) n]
  if p.ndim == 3:
    if keep is not None:
      raise ValueError("keep needs the stacked [K, E, n, C] input")
    return per_model
  if keep is None:
    return per_model.mean(axis=0)
  k = np.asarray(keep, dtype=bool)
  if k.shape != per_model.shape:
    raise ValueError(f"keep must be [K, n] = {per_model.shape}, got {k.shape}")
  count = k.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, np.where(k, per_model, 0.0).sum(axis=0) / count, np.nan)


def _average_ranks(x: np.ndarray) -> np.ndarray:
  """Ranks ``1..n`` of a 1-D array, ties sharing the mean of their ranks."""
  order = np.argsort(x, kind="stable")
  sorted_x = x[order]
  new_group = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
  group = np.cumsum(new_group) - 1
  starts = np.flatnonzero(new_group)
  ends = np.concatenate([starts[1:], [x.size]])
  mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
  ranks = np.empty(x.size)
  ranks[order] = mean_rank[group]
  return ranks


def spearman(a: Any, b: Any) -> float:
  """Spearman rank correlation of two score vectors, ignoring pairs with a NaN.

  The Pearson correlation of the average ranks (ties share the mean of their ranks), as
  ``scipy.stats.spearmanr`` computes it; pairs where either value is NaN are dropped first
  (``nan_policy="omit"`` applied pairwise). NaN if fewer than 2 pairs remain or one side is
  constant.

  Args:
    a: ``[n]`` scores, e.g. :func:`feldman_zhang` ``["score"]``.
    b: ``[n]`` scores, e.g. :func:`confidence_proxy`.

  Returns:
    The correlation in ``[-1, 1]`` (or NaN).
  """
  x = np.asarray(a, dtype=np.float64).reshape(-1)
  y = np.asarray(b, dtype=np.float64).reshape(-1)
  if x.shape != y.shape:
    raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
  ok = ~(np.isnan(x) | np.isnan(y))
  x, y = x[ok], y[ok]
  if x.size < 2:
    return float("nan")
  rx = _average_ranks(x) - (x.size + 1) / 2.0
  ry = _average_ranks(y) - (y.size + 1) / 2.0
  denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
  if denom == 0:
    return float("nan")
  return float(np.clip((rx * ry).sum() / denom, -1.0, 1.0))
