"""NegGrad: gradient ascent on the forget set, the same update as `ga` with its own tuning.

Definition (`40-methods.md`): minimise −CE(D_f) from θ* (D_r is never read), exactly the `ga`
update (`ga.gradient_ascent`). Naming differs between papers: this pure ascent is the
"NegGrad" of Golatkar et al.; SCRUB's code (Kurmanji et al., NeurIPS 2023, meghdadk/SCRUB
notebooks) calls NegGrad an α-weighted loss `α·(L_r + L2 to θ*) − (1−α)·L_f` (`45-recipes.md`),
and the retain-regularised variant here is `neggrad_plus` (DEL's NegGrad+, β·CE(D_r) −
(1−β)·CE(D_f)); SCRUB's weighted form with the L2 term is not implemented yet.

Source: Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (NegGrad baseline);
Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023.

Defaults differ from `ga`: more epochs under a cosine schedule (the ascent slows down towards
the end instead of accelerating).
"""

from __future__ import annotations

from unlearn_jax.methods import base
from unlearn_jax.methods.ga import check_ascent_config, gradient_ascent

USES_FORGET = True
DEFAULTS = dict(epochs=10, batch_size=32, learning_rate=0.02, momentum=0.9, weight_decay=0.0,
                schedule="cosine", final_lr_fraction=0.0)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  check_ascent_config("neggrad", cfg, data)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  return gradient_ascent("neggrad", state, data, cfg, key, mask)
