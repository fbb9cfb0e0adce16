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

from unlearn_jax.metrics import accuracy as _accuracy
from unlearn_jax.metrics import forgetting_quality as _forgetting_quality
from unlearn_jax.metrics import mia as _mia
from unlearn_jax.metrics import tow as _tow
from unlearn_jax.metrics.accuracy import *  # noqa: F403
from unlearn_jax.metrics.forgetting_quality import *  # noqa: F403  (the function shadows the module)
from unlearn_jax.metrics.mia import *  # noqa: F403
from unlearn_jax.metrics.tow import *  # noqa: F403

# Every public name of the four modules (each module's __all__), flat: metrics.mia_svc(...).
__all__ = [*_accuracy.__all__, *_mia.__all__, *_forgetting_quality.__all__, *_tow.__all__]
