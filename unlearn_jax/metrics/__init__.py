"""Evaluation metrics: pure array kernels on model outputs (no model code, no training).

One module per job (definitions and sources in each docstring; ``50-metrics.md``):

* :mod:`~unlearn_jax.metrics.accuracy`: accuracy/error/loss of a split, Δ to the retrain oracle,
  mean ± std over seeds, cost relative to retraining.
* :mod:`~unlearn_jax.metrics.mia`: membership-inference attacks (loss + logistic regression of the
  NeurIPS 2023 starting kit / SCRUB; SVC "MIA-efficacy" of L1-sparse / SalUn).
* :mod:`~unlearn_jax.metrics.forgetting_quality`: the NeurIPS 2023 Machine Unlearning challenge
  score (Triantafillou et al. 2024) and its oracle-vs-oracle ceiling.
* :mod:`~unlearn_jax.metrics.tow`: Tug of War (Zhao et al. 2024).
* :mod:`~unlearn_jax.metrics.memorization`: Feldman-Zhang memorisation scores from shadow models
  with keep masks, RUM's learning-event confidence proxy, Spearman rank correlation.
* :mod:`~unlearn_jax.metrics.lira`: per-example likelihood-ratio MIAs on shadow models: LiRA
  (Carlini et al. 2022; online/offline, fixed variance), its evaluation (AUC, accuracy, TPR at
  low FPR) and U-LiRA on unlearned models (Hayes et al. 2024).
* :mod:`~unlearn_jax.metrics.klom`: KLOM (Georgiev et al. 2024/EasyDUB): binned KL divergence of
  per-example margin distributions, unlearned vs oracle models, its P95 per split and the
  oracle-vs-oracle floor.

``55-shadow-eval.md`` describes the shadow-model designs the last three serve.
"""

from unlearn_jax.metrics import accuracy as _accuracy
from unlearn_jax.metrics import forgetting_quality as _forgetting_quality
from unlearn_jax.metrics import klom as _klom
from unlearn_jax.metrics import lira as _lira
from unlearn_jax.metrics import memorization as _memorization
from unlearn_jax.metrics import mia as _mia
from unlearn_jax.metrics import tow as _tow
from unlearn_jax.metrics.accuracy import *  # noqa: F403
from unlearn_jax.metrics.forgetting_quality import *  # noqa: F403  (the function shadows the module)
from unlearn_jax.metrics.klom import *  # noqa: F403  (the function shadows the module)
from unlearn_jax.metrics.lira import *  # noqa: F403
from unlearn_jax.metrics.memorization import *  # noqa: F403
from unlearn_jax.metrics.mia import *  # noqa: F403
from unlearn_jax.metrics.tow import *  # noqa: F403

# Every public name of the modules (each module's __all__), flat: metrics.mia_svc(...).
__all__ = [
  *_accuracy.__all__,
  *_mia.__all__,
  *_forgetting_quality.__all__,
  *_tow.__all__,
  *_memorization.__all__,
  *_lira.__all__,
  *_klom.__all__,
]
