"""Per-example likelihood-ratio membership inference: LiRA and its unlearning version U-LiRA.

References (``55-shadow-eval.md`` §1):

* LiRA: N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis, F. Tramèr, "Membership Inference
  Attacks From First Principles", IEEE S&P 2022 (arXiv:2112.03570); code
  ``research/mi_lira_2021/`` of github.com/tensorflow/privacy (``score.py`` for the statistic,
  ``plot.py: generate_ours / generate_ours_offline / sweep / do_plot`` for the attack and its
  evaluation).
* U-LiRA: J. Hayes, I. Shumailov, E. Triantafillou, A. Khalifa, N. Papernot, "Inexact Unlearning
  Needs More Careful Evaluations to Avoid a False Sense of Privacy", SaTML 2025
  (arXiv:2403.01218): LiRA where the "in" models trained on an example *and then unlearned it*.
  :func:`ulira` follows the implementation the KLOM authors used
  (github.com/RoyRin/data-unlearning-bench at 56757ac,
  ``unlearning/auditors/ulira/compute_ulira_scores.py``: ``ulira_paper``,
  ``do_ulira_on_one_model``, ``single_ulira``).

The statistic is the logit-scaled confidence
``φ = log p_y − log Σ_{j≠y} p_j = z_y − logsumexp_{j≠y} z_j``: the one function
:func:`unlearn_jax.metrics.forgetting_quality.logit_scaled_confidence` (also importable
from here and from ``unlearn_jax.metrics``; the "margin" of
:func:`unlearn_jax.metrics.klom.margins`). Each example ``j`` gets its own Gaussians of ``φ``
under models that did ("in") and did not ("out") train on it; a target model's ``φ`` is then
scored by its likelihood ratio. Larger scores always mean "more likely a member"
(for U-LiRA: "more likely forgotten than never seen").

Inputs are per-model arrays with a leading model axis (``[models, n]``); everything is NumPy
``float64`` on the host, deterministic, and NaN-safe: examples without enough shadow models get
NaN scores, and the summaries leave NaN scores out.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from unlearn_jax.metrics.forgetting_quality import logit_scaled_confidence  # noqa: F401 (re-export)

__all__ = [
  "LIRA_FPRS",
  "LIRA_SIGMA_FLOOR",
  "lira_scores",
  "attack_summary",
  "ulira",
  "ulira_per_example",
]

LIRA_FPRS = (0.01, 0.001)
"""False-positive rates at which :func:`attack_summary` reports the TPR (1 % and 0.1 %)."""
LIRA_SIGMA_FLOOR = 1e-6
"""Smallest standard deviation of a fitted Gaussian (all shadows equal would give σ = 0)."""

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


# ----------------------------------------------------------------------------------------------
# Validation and masked statistics.


def _stats(name: str, value: Any, ndim: int = 2) -> np.ndarray:
  a = np.asarray(value, dtype=np.float64)
  if a.ndim != ndim:
    raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
  return a


def _mask(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
  m = np.asarray(value)
  if m.shape != tuple(shape):
    raise ValueError(f"{name} must have shape {tuple(shape)}, got {m.shape}")
  if m.dtype != np.bool_:
    if not np.all((m == 0) | (m == 1)):
      raise ValueError(f"{name} must be boolean (or 0/1)")
    m = m.astype(bool)
  return m


def _log_normal(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  z = (x - mu) / sigma
  return -0.5 * z * z - np.log(sigma) - _LOG_SQRT_2PI


def _masked_center(x: np.ndarray, mask: np.ndarray, center: str) -> np.ndarray:
  """Per column (axis 0) median or mean of the masked entries; NaN where none."""
  filled = np.where(mask, x, np.nan)
  with np.errstate(invalid="ignore", divide="ignore"):
    if center == "median":
      # nanmedian warns on all-NaN columns; those are NaN anyway.
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(filled, axis=0)
    count = mask.sum(axis=0)
    return np.where(count > 0, np.where(mask, x, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)


def _fit_sides(
  x: np.ndarray, mask: np.ndarray, center: str, fix_variance: bool | str, min_models: int
) -> tuple[np.ndarray, np.ndarray]:
  """Per-column Gaussian ``(μ, σ)`` of the masked entries of ``x [S, n]``.

  ``σ`` is the population std (``ddof=0``, as ``np.std`` in both reference codes) around ``μ``
  itself for the mean, around the sample mean for the median (``np.std``'s definition), or pooled
  over the columns (see :func:`lira_scores`). Columns with fewer than ``min_models`` entries get
  NaN.
  """
  count = mask.sum(axis=0)
  mu = _masked_center(x, mask, center)
  mean = np.where(count > 0, np.where(mask, x, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
  sq = np.where(mask, (x - np.nan_to_num(mean)[None, :]) ** 2, 0.0).sum(axis=0)
  valid = count >= min_models
  if fix_variance is False:
    sigma = np.sqrt(np.where(count > 0, sq / np.maximum(count, 1), np.nan))
  elif fix_variance is True or fix_variance == "pooled":
    total = count[valid].sum()
    sigma = np.full(x.shape[1], np.sqrt(sq[valid].sum() / total) if total else np.nan)
  elif fix_variance == "global":
    values = x[mask & valid[None, :]]
    sigma = np.full(x.shape[1], values.std() if values.size else np.nan)
  else:
    raise ValueError(
      f"fix_variance must be False, True, 'pooled' or 'global', got {fix_variance!r}"
    )
  sigma = np.maximum(sigma, LIRA_SIGMA_FLOOR)
  mu = np.where(valid, mu, np.nan)
  sigma = np.where(valid, sigma, np.nan)
  return mu, sigma


# ----------------------------------------------------------------------------------------------
# LiRA.


def lira_scores(
  target_stat: Any,
  shadow_stat: Any,
  shadow_in: Any,
  *,
  online: bool = True,
  fix_variance: bool | str = False,
  center: str = "median",
  min_shadows: int = 2,
) -> np.ndarray:
  """LiRA membership scores of target models, per example (larger = more likely a member).

  For each example ``j`` the shadow models give two samples of ``φ``: "in" (``shadow_in[s, j]``)
  and "out" (the rest). Each is summarised by a Gaussian: ``μ`` = their median (as
  ``generate_ours`` of tensorflow/privacy ``mi_lira_2021/plot.py``) or mean, ``σ`` = their
  population std (``np.std``), floored at :data:`LIRA_SIGMA_FLOOR`.

  * online (Carlini et al. 2022, Alg. 1):
    ``score = log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out)``. ``score > 0`` is the Bayes decision
    "member" for equal priors under the two fitted Gaussians.
  * offline (only out models): ``score = (φ − μ_out) / σ_out``. The paper's offline test is
    one-sided, ``Λ = Pr[Z < φ]`` with ``Z ~ N(μ_out, σ_out²)``, i.e. ``Φ(score)``: a monotone map
    of our score, so ROC, AUC and TPR at any FPR are the same, and the z-score does not saturate
    at 1 in floating point. (``generate_ours_offline`` of the public code ranks by
    ``−log N(φ; μ_out, σ_out)`` instead, a two-sided test that also calls "member" a ``φ`` far
    *below* the out models; we follow the paper.) ``score > 0`` only means "above the out centre"
    and is no Bayes threshold.

  Fixed variance (``fix_variance``; the public code's choice with few shadows):

  * ``True`` or ``"pooled"``: one σ per side for all examples, the pooled within-example spread
    ``sqrt(Σ_j Σ_{s∈side(j)} (φ_sj − mean_j)² / Σ_j n_j)`` over the examples with enough shadows.
  * ``"global"``: ``np.std`` of all the side's values at once, as ``generate_ours`` computes it.
    That also counts the spread of the examples' means, and the public code moreover uses the
    in-values for ``σ_out``; we use each side's own values.

  Unlike the public code, which first truncates every example to the smallest shadow count of
  any example, each example uses all of its shadows.

  NaN: an example with fewer than ``min_shadows`` in (online only) or out shadows gets a NaN
  score for every target; so does a NaN target statistic.

  Args:
    target_stat: ``[T, n]`` (or ``[n]``) ``φ`` of each target model on each example
      (:func:`~unlearn_jax.metrics.forgetting_quality.logit_scaled_confidence`).
    shadow_stat: ``[S, n]`` ``φ`` of the shadow models (the targets must not be among them).
    shadow_in: ``[S, n]`` booleans: shadow ``s`` trained on example ``j``.
    online: the two-Gaussian test (True) or the out-only one-sided test (False).
    fix_variance: False (per-example σ), True/``"pooled"`` or ``"global"`` (see above).
    center: ``"median"`` (the public code) or ``"mean"``.
    min_shadows: least number of shadows per side (>= 1) for an example to be scored.

  Returns:
    ``float64`` scores of ``target_stat``'s shape.

  Raises:
    ValueError: on mismatched shapes or unknown options.
  """
  target = np.asarray(target_stat, dtype=np.float64)
  squeeze = target.ndim == 1
  target = target[None] if squeeze else target
  shadow = _stats("shadow_stat", shadow_stat)
  if target.ndim != 2 or target.shape[1] != shadow.shape[1]:
    raise ValueError(
      f"target_stat must be [T, n] (or [n]) with n = {shadow.shape[1]}, got {target.shape}"
    )
  inn = _mask("shadow_in", shadow_in, shadow.shape)
  if center not in ("median", "mean"):
    raise ValueError(f"center must be 'median' or 'mean', got {center!r}")
  if min_shadows < 1:
    raise ValueError(f"min_shadows must be >= 1, got {min_shadows}")
  mu_out, sd_out = _fit_sides(shadow, ~inn, center, fix_variance, min_shadows)
  if online:
    mu_in, sd_in = _fit_sides(shadow, inn, center, fix_variance, min_shadows)
    score = _log_normal(target, mu_in, sd_in) - _log_normal(target, mu_out, sd_out)
  else:
    score = (target - mu_out) / sd_out
  return score[0] if squeeze else score


# ----------------------------------------------------------------------------------------------
# Evaluation of an attack.


def _roc(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """ROC points ``(fpr, tpr)`` at every distinct threshold ("score >= t is a member"), from (0, 0).

  The same points as ``sklearn.metrics.roc_curve(label, score, drop_intermediate=False)``.
  """
  order = np.argsort(-score, kind="stable")
  s, y = score[order], label[order]
  last = np.concatenate([s[1:] != s[:-1], [True]])  # last position of each distinct score
  tp = np.cumsum(y)[last]
  fp = np.cumsum(~y)[last]
  n_pos, n_neg = y.sum(), (~y).sum()
  return np.concatenate([[0.0], fp / n_neg]), np.concatenate([[0.0], tp / n_pos])


def _summary_one(
  score: np.ndarray, member: np.ndarray, fprs: tuple[float, ...]
) -> tuple[float, float, float, np.ndarray, int, int]:
  ok = ~np.isnan(score)
  s, y = score[ok], member[ok]
  n_pos, n_neg = int(y.sum()), int((~y).sum())
  nan_tpr = np.full(len(fprs), np.nan)
  if n_pos == 0 or n_neg == 0:
    return np.nan, np.nan, np.nan, nan_tpr, n_pos, n_neg
  fpr, tpr = _roc(s, y)
  auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
  balanced = float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))
  accuracy = float(np.mean((s > 0) == y))
  tpr_at = np.array([tpr[fpr <= f].max() for f in fprs])
  return auc, balanced, accuracy, tpr_at, n_pos, n_neg


def _stack_rows(rows: list[tuple], names: tuple[str, ...], fprs: tuple[float, ...]
                ) -> dict[str, Any]:
  """Per-target tuples (fields in the order of `names`) as arrays with a leading target axis;
  `n_*` fields are counts."""
  out: dict[str, Any] = {}
  for i, name in enumerate(names):
    column = [r[i] for r in rows]
    if name == "tpr_at_fpr":
      out[name] = np.array(column).reshape(len(rows), len(fprs))
    else:
      out[name] = np.array(column, dtype=np.int64 if name.startswith("n_") else np.float64)
  out["fprs"] = np.array(fprs)
  return out


def attack_summary(
  scores: Any, is_member: Any, *, fprs: Sequence[float] = LIRA_FPRS
) -> dict[str, Any]:
  """AUC, accuracies and TPR at low FPR of a membership score, per target model.

  For each target (row), with "member" predicted by large scores and NaN scores left out:

  * ``auc``: area under the ROC curve, ties counted half (= ``sklearn.metrics.roc_auc_score``);
  * ``balanced_accuracy``: the best balanced accuracy over all thresholds,
    ``max_t 1 − (FPR_t + FNR_t) / 2``: what LiRA's code reports as "accuracy" (``plot.py: sweep``);
  * ``accuracy``: plain accuracy of the fixed rule ``score > 0``. For online LiRA and U-LiRA this
    is the Bayes decision of the two fitted Gaussians (U-LiRA's ``p > 0.5``), the number U-LiRA
    reports; for offline LiRA it has no such meaning. On balanced data it is also balanced;
  * ``tpr_at_fpr``: for each ``f`` in ``fprs``, the largest TPR of a ROC point with ``FPR <= f``
    (LiRA's ``do_plot`` takes the last point with ``FPR < f``, which differs only where ``f``
    times the number of non-members is a whole number of false positives).

  Metrics are NaN for a row without any member or non-member (after leaving out NaN scores).

  Args:
    scores: ``[T, n]`` (or ``[n]``) membership scores, larger = more likely a member.
    is_member: booleans of the same shape (or ``[n]``, shared by all rows).
    fprs: false-positive rates for ``tpr_at_fpr``.

  Returns:
    ``{"auc", "balanced_accuracy", "accuracy": [T], "tpr_at_fpr": [T, F], "fprs": [F],
    "n_members", "n_nonmembers": int [T]}``; for a 1-D input the leading axis is dropped (floats,
    ``[F]``, ints).
  """
  s = np.asarray(scores, dtype=np.float64)
  squeeze = s.ndim == 1
  s = s[None] if squeeze else s
  if s.ndim != 2:
    raise ValueError(f"scores must be [T, n] or [n], got shape {s.shape}")
  m = np.asarray(is_member)
  m = np.broadcast_to(m, s.shape) if m.shape == s.shape[1:] else m
  m = _mask("is_member", m, s.shape)
  fprs = tuple(float(f) for f in fprs)
  rows = [_summary_one(s[t], m[t], fprs) for t in range(s.shape[0])]
  out = _stack_rows(rows, ("auc", "balanced_accuracy", "accuracy", "tpr_at_fpr", "n_members",
                           "n_nonmembers"), fprs)
  if squeeze:
    for key in ("auc", "balanced_accuracy", "accuracy"):
      out[key] = float(out[key][0])
    out["tpr_at_fpr"] = out["tpr_at_fpr"][0]
    out["n_members"] = int(out["n_members"][0])
    out["n_nonmembers"] = int(out["n_nonmembers"][0])
  return out


# ----------------------------------------------------------------------------------------------
# U-LiRA.


def _first_k(mask: np.ndarray, k: np.ndarray) -> np.ndarray:
  """Keep, per column, the first ``k[j]`` True entries of ``mask`` (in model order)."""
  return mask & (np.cumsum(mask, axis=0) <= k[None, :])


def _balanced(members: np.ndarray, nonmembers: np.ndarray, rng: np.random.Generator):
  k = min(members.size, nonmembers.size)

  def pick(idx):
    return idx if idx.size == k else np.sort(rng.choice(idx, size=k, replace=False))

  return pick(members), pick(nonmembers)


def ulira(
  unlearned_stat: Any,
  trained: Any,
  forgotten: Any,
  out_stat: Any,
  out_mask: Any,
  targets: Sequence[int],
  *,
  pool: Any = None,
  balance: bool = True,
  cap: int | None = 300,
  fix_variance: bool = False,
  exclude_all_targets: bool = False,
  min_models: int = 2,
  fprs: Sequence[float] = LIRA_FPRS,
  seed: int = 0,
) -> dict[str, Any]:
  """U-LiRA: can a per-example likelihood-ratio attack tell forgotten examples from unseen ones?

  ``M`` unlearned models: model ``m`` was trained on the examples with ``trained[m]`` and then
  unlearned those with ``forgotten[m]`` (a subset). For each target ``t`` in ``targets`` (never
  used to fit its own Gaussians):

  1. members (label 1) = its forgotten examples, non-members (label 0) = examples it never trained
     on; both restricted to ``pool`` if given (the reference draws non-members from the
     "forgettable" pool, i.e. ``pool = forgotten.any(0)``); with ``balance`` the larger group is
     subsampled without replacement to the size of the smaller, by
     ``numpy.random.default_rng((seed, t))`` (the reference takes the first pool examples in index
     order and does not balance when too few are unseen);
  2. per example ``x``: "in" = ``unlearned_stat`` of the *other* unlearned models that forgot
     ``x`` (all listed targets are left out with ``exclude_all_targets``, as the reference does),
     "out" = ``out_stat`` of the models with ``out_mask`` (models that never trained on ``x``,
     e.g. original half-data models whose half excluded ``x``: "we don't want oracles. we want
     shadow models that never saw the point"); with ``cap`` both keep their first
     ``min(#in, #out, cap)`` models in index order (the reference's ``max_models = 300``);
  3. Gaussians with mean and population std (``np.std``) of each side, floored at
     :data:`LIRA_SIGMA_FLOOR`; with ``fix_variance`` one pooled within-example σ per side over the
     target's scored examples;
  4. ``p = N(φ_t; in) / (N(φ_t; in) + N(φ_t; out))``, "forgotten" if ``p > 0.5``; computed as
     ``sigmoid(log N(in) − log N(out))``, so it stays defined far in the tails, where the
     reference's ratio of densities is ``0 / 0`` (NaN, which it reads as "not forgotten").

  Reported per target: ``accuracy`` (of ``p > 0.5``, the U-LiRA number: 0.5 = indistinguishable
  from exact unlearning, 1.0 = nothing forgotten), and from the log-odds
  ``log N(in) − log N(out)`` (a monotone map of ``p`` that does not saturate) ``auc``,
  ``balanced_accuracy`` and ``tpr_at_fpr`` (see :func:`attack_summary`); then their mean and
  population std over the targets (``np.mean``/``np.std`` of the reference's ``model_scores``).

  Controls: with retrained models as the "unlearned" side (``trained`` = the original training
  set, ``forgotten`` = the forget set) every metric is about 0.5 in expectation (the exact-
  unlearning floor); with the original models (nothing unlearned) it is high.

  NaN: an example with fewer than ``min_models`` models left on either side (after the cap) is
  not scored for that target (counted in ``n_skipped``) and is dropped before balancing; a target
  left without members or non-members gets NaN metrics, and the means/stds ignore NaN.

  Args:
    unlearned_stat: ``[M, n]`` ``φ`` of the unlearned models.
    trained: ``[M, n]`` booleans: model ``m`` was trained on ``x`` (before unlearning).
    forgotten: ``[M, n]`` booleans: ``x`` was in model ``m``'s forget set (implies ``trained``).
    out_stat: ``[S, n]`` ``φ`` of models that serve as "never trained on it".
    out_mask: ``[S, n]`` booleans: ``out_stat[s, x]`` may be used for ``x``.
    targets: indices into the ``M`` unlearned models.
    pool: optional ``[n]`` booleans restricting the evaluated examples.
    balance: subsample to equal numbers of members and non-members.
    cap: models per side, at most ``min(#in, #out, cap)``; None uses every model of each side.
    fix_variance: pooled σ per side instead of per-example σ.
    exclude_all_targets: leave every listed target out of every fit, not just the current one.
    min_models: least number of models per side for an example to be scored (>= 1).
    fprs: false-positive rates for ``tpr_at_fpr``.
    seed: seed of the balancing subsample.

  Returns:
    ``{"targets": [T], "accuracy", "auc", "balanced_accuracy": [T], "tpr_at_fpr": [T, F],
    "fprs": [F], "n_members", "n_nonmembers", "n_skipped": int [T], "<metric>_mean",
    "<metric>_std" for the four metrics, "per_example": T dicts {"index", "label", "p",
    "log_odds"}}``.

  Raises:
    ValueError: on mismatched shapes, ``forgotten`` outside ``trained``, bad target indices or
      options.
  """
  u = _stats("unlearned_stat", unlearned_stat)
  num_models, n = u.shape
  tr = _mask("trained", trained, u.shape)
  fg = _mask("forgotten", forgotten, u.shape)
  if np.any(fg & ~tr):
    raise ValueError("forgotten must imply trained (a model forgets only what it trained on)")
  o = _stats("out_stat", out_stat)
  if o.shape[1] != n:
    raise ValueError(f"out_stat must be [S, n] with n = {n}, got {o.shape}")
  om = _mask("out_mask", out_mask, o.shape)
  pl = np.ones(n, bool) if pool is None else _mask("pool", pool, (n,))
  tg = np.asarray(targets, dtype=np.int64).reshape(-1)
  if tg.size == 0 or len(np.unique(tg)) != tg.size or tg.min() < 0 or tg.max() >= num_models:
    raise ValueError(f"targets must be distinct indices in [0, {num_models}), got {tg.tolist()}")
  if min_models < 1:
    raise ValueError(f"min_models must be >= 1, got {min_models}")
  if cap is not None and cap < 1:
    raise ValueError(f"cap must be >= 1 or None, got {cap}")
  fprs = tuple(float(f) for f in fprs)

  rows, per_example = [], []
  for t in tg:
    usable = np.ones(num_models, bool)
    usable[tg if exclude_all_targets else [t]] = False
    in_mask = fg & usable[:, None]
    n_in, n_out = in_mask.sum(axis=0), om.sum(axis=0)
    if cap is None:
      k_in, k_out = n_in, n_out
    else:
      k_in = k_out = np.minimum(np.minimum(n_in, n_out), cap)
    enough = (k_in >= min_models) & (k_out >= min_models)
    cand_pos = np.flatnonzero(fg[t] & pl)
    cand_neg = np.flatnonzero(~tr[t] & pl)
    skipped = int((~enough[cand_pos]).sum() + (~enough[cand_neg]).sum())
    pos, neg = cand_pos[enough[cand_pos]], cand_neg[enough[cand_neg]]
    if balance:
      pos, neg = _balanced(pos, neg, np.random.default_rng((seed, int(t))))
    idx = np.concatenate([pos, neg])
    label = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    if idx.size:
      sel_in = _first_k(in_mask[:, idx], k_in[idx])
      sel_out = _first_k(om[:, idx], k_out[idx])
      mu_in, sd_in = _fit_sides(u[:, idx], sel_in, "mean", fix_variance, min_models)
      mu_out, sd_out = _fit_sides(o[:, idx], sel_out, "mean", fix_variance, min_models)
      phi = u[t, idx]
      log_odds = _log_normal(phi, mu_in, sd_in) - _log_normal(phi, mu_out, sd_out)
    else:
      log_odds = np.zeros(0)
    with np.errstate(over="ignore"):
      p = 1.0 / (1.0 + np.exp(-log_odds))
    auc, balanced, _, tpr_at, n_pos, n_neg = _summary_one(log_odds, label, fprs)
    ok = ~np.isnan(p)
    accuracy = float(np.mean((p[ok] > 0.5) == label[ok])) if n_pos and n_neg else np.nan
    rows.append((accuracy, auc, balanced, tpr_at, n_pos, n_neg, skipped))
    per_example.append({"index": idx, "label": label, "p": p, "log_odds": log_odds})

  out: dict[str, Any] = {"targets": tg, **_stack_rows(
    rows, ("accuracy", "auc", "balanced_accuracy", "tpr_at_fpr", "n_members", "n_nonmembers",
           "n_skipped"), fprs)}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, as documented
    for key in ("accuracy", "auc", "balanced_accuracy", "tpr_at_fpr"):
      out[f"{key}_mean"] = np.nanmean(out[key], axis=0)
      out[f"{key}_std"] = np.nanstd(out[key], axis=0)
  for key in ("accuracy", "auc", "balanced_accuracy"):
    out[f"{key}_mean"] = float(out[f"{key}_mean"])
    out[f"{key}_std"] = float(out[f"{key}_std"])
  out["per_example"] = per_example
  return out


def ulira_per_example(result: dict[str, Any], n: int) -> dict[str, np.ndarray]:
  """Per-example vulnerability from a :func:`ulira` result: how often each example was caught.

  For each example, over the targets that scored it: ``correct`` = fraction of targets where
  ``p > 0.5`` matched its label (as a member or as a non-member), ``correct_as_member`` = the
  same over the targets where it was forgotten, and the counts. NaN where never scored. Hayes et
  al. show vulnerability varies a lot between examples; a histogram of ``correct_as_member`` shows
  it.

  Args:
    result: the dict :func:`ulira` returns.
    n: number of examples.

  Returns:
    ``{"correct", "correct_as_member": float64 [n], "times_scored", "times_member": int64 [n]}``.
  """
  hits, seen = np.zeros(n), np.zeros(n, np.int64)
  hits_m, seen_m = np.zeros(n), np.zeros(n, np.int64)
  for row in result["per_example"]:
    ok = ~np.isnan(row["p"])
    idx, label = row["index"][ok], row["label"][ok]
    right = (row["p"][ok] > 0.5) == label
    np.add.at(hits, idx, right)
    np.add.at(seen, idx, 1)
    np.add.at(hits_m, idx[label], right[label])
    np.add.at(seen_m, idx[label], 1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return {
      "correct": np.where(seen > 0, hits / np.maximum(seen, 1), np.nan),
      "correct_as_member": np.where(seen_m > 0, hits_m / np.maximum(seen_m, 1), np.nan),
      "times_scored": seen,
      "times_member": seen_m,
    }
