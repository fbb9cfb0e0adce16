"""NegGrad: gradient ascent on the forget set, the same update as `ga` with its own tuning.

Definition (`40-methods.md`): with `form="ascent"` (default), minimise −CE(D_f) from θ* (D_r is
never read), exactly the `ga` update (`ga.gradient_ascent`): the "NegGrad" of Golatkar et al.

`form="weighted"` is the NegGrad of SCRUB's code (Kurmanji et al., NeurIPS 2023, meghdadk/SCRUB),
an α-weighted retain and forget loss over paired batches (`zip(retain, cycle(forget))`):
    L = α·(CE(B_r) + (l2/2)·‖θ − θ*‖²) − (1 − α)·CE(B_f).
The repository has two versions (docs/recipes_sources.md §10): `helper/loops.py train_negrad`
(large-scale and MIA notebooks: training mode, no L2 term, α = 0.9999, plain SGD lr 0.01) and the
small-scale notebook's `run_neggrad_epoch` (`model.eval()`, l2 = its weight_decay, α = 0.95). Set
`train_mode`, `l2`, `alpha` accordingly; `retain_batch_size` and `batch_size` (the forget batch)
size the pairs; `neggrad_plus.paired_descent_ascent` is the loop. (`neggrad_plus` is DEL's NegGrad+,
the same loss with β and no L2 term.)

Source: Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (NegGrad baseline);
Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023.

Defaults differ from `ga`: more epochs under a cosine schedule (the ascent slows down towards
the end instead of accelerating).
"""

from __future__ import annotations

from unlearn_jax.methods import base, common, neggrad_plus
from unlearn_jax.methods.ga import check_ascent_config, gradient_ascent

USES_FORGET = True
DEFAULTS = dict(epochs=10, batch_size=32, learning_rate=0.02, momentum=0.9, weight_decay=0.0,
                schedule="cosine", final_lr_fraction=0.0,
                # form="weighted" only (SCRUB's NegGrad):
                form="ascent", alpha=0.9999, retain_batch_size=128, l2=0.0, train_mode=True,
                forget_cycle="epoch")
FORMS = ("ascent", "weighted")


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  form = cfg.get("form", "ascent")
  base.require("neggrad", form in FORMS, f"form must be one of {', '.join(FORMS)}, got {form!r}")
  if form == "ascent":
    check_ascent_config("neggrad", cfg, data)
    return
  common.check_sgd_config("neggrad", cfg, batch_keys=("batch_size", "retain_batch_size"))
  a = cfg["alpha"]
  base.require("neggrad", common.is_real(a) and 0 <= a <= 1, f"alpha must be in [0, 1], got {a!r}")
  neggrad_plus.check_paired_options("neggrad", cfg)
  if data is not None:
    common.check_forget("neggrad", data)
    common.check_batch("neggrad", "retain_batch_size", "retain", cfg["retain_batch_size"],
                       data.num_retain)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  if cfg.get("form", "ascent") == "ascent":
    return gradient_ascent("neggrad", state, data, cfg, key, mask)
  check_config(cfg, data)
  with base.Timer() as timer:
    return neggrad_plus.paired_descent_ascent(
        state, data, cfg, key, mask, beta=float(cfg["alpha"]),
        retain_batch_size=cfg["retain_batch_size"], forget_batch_size=cfg["batch_size"],
        timer=timer)
