"""Evaluation metrics: pure array kernels on model outputs (no model code, no training).

One module per job (definitions and sources in each docstring; ``50-metrics.md``):

* :mod:`~unlearn_jax.metrics.accuracy`: accuracy/error/loss of a split, Δ to the retrain oracle,
  mean ± std over seeds, cost relative to retraining.
* :mod:`~unlearn_jax.metrics.mia`: membership-inference attacks (loss + logistic regression of the
  NeurIPS 2023 starting kit / SCRUB; SVC "MIA-efficacy" of L1-sparse / SalUn).
* :mod:`~unlearn_jax.metrics.forgetting_quality`: the NeurIPS 2023 Machine Unlearning challenge
  score (Triantafillou et al. 2024) and its oracle-vs-oracle ceiling.
* :mod:`~unlearn_jax.metrics.tow`: Tug of War (Zhao et al. 2024).
"""

from unlearn_jax.metrics.accuracy import (
    cost_relative,
    delta_to_oracle,
    mean_std,
    softmax_cross_entropy_per_example,
    split_metrics,
)
from unlearn_jax.metrics.forgetting_quality import (
    forget_score,
    forgetting_quality,
    logit_scaled_confidence,
    num_score_bins,
    oracle_ceiling,
    per_example_epsilon,
)
from unlearn_jax.metrics.mia import (
    SVC_FEATURES,
    feature_confidence,
    feature_correctness,
    feature_entropy,
    feature_m_entropy,
    feature_prob,
    loss_mia_dataset,
    mia_loss_lr,
    mia_svc,
    mia_svc_all,
    subsample_indices,
    svc_features,
)
from unlearn_jax.metrics.tow import tug_of_war

__all__ = [
    # accuracy
    "softmax_cross_entropy_per_example",
    "split_metrics",
    "delta_to_oracle",
    "mean_std",
    "cost_relative",
    # mia
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
    # forgetting quality
    "logit_scaled_confidence",
    "per_example_epsilon",
    "num_score_bins",
    "forget_score",
    "forgetting_quality",
    "oracle_ceiling",
    # tow
    "tug_of_war",
]
