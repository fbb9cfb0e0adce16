"""SalUn: Random-Label unlearning restricted to the salient parameters.

Definition (`40-methods.md`, `10-del.md` §5 `salloc`): per model, the saliency score of every
parameter element is s = |Σ_B ∇θ CE_B(θ*)| over mini-batches B of the forget set, with the model
in inference mode (BatchNorm on running statistics); the mask m marks the global top
floor(α·P) elements (element granularity, no per-layer quota, `localize.salun_mask`). Then
`random_label` runs with updates confined to m: D_f relabeled at random, training on
D_r ∪ relabeled D_f with cross-entropy. With a user mask as well, only the intersection
(user mask ∧ saliency mask) may change.

Source: Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
Both Image Classification and Generation", ICLR 2024 (α = 0.5 is their common choice);
`localize` implements the scores (DEL, arXiv 2412.02432, Sec. 3 `salloc`).

Stacked states get one mask per model, computed from that model's own weights and BatchNorm
statistics (`common.localization_masks`, the per-model localization `del` uses too).
`procedure` is `random_label`'s (`forget_then_retain` is the public code's CIFAR-10/SVHN order).
`decay_unmasked=True` applies the mask to the gradients before weight decay and momentum, as the
public code did until "Fix weight decay (#33)" (OPTML-Group/Unlearn-Saliency a6e89fd, Feb 2026):
non-salient parameters then still shrink by weight decay, as in the published runs; the default
(False) keeps them bit-identical, as the fixed code does.

`info["mask_fraction"]` records the fraction of parameters each model may change.
"""

from __future__ import annotations

from unlearn_jax import masking
from unlearn_jax.methods import base, common
from unlearn_jax.methods.random_label import check_procedure, relabel_and_train

USES_FORGET = True
DEFAULTS = dict(alpha=0.5, mask_batch_size=128, epochs=3, batch_size=64, learning_rate=0.01,
                momentum=0.9, weight_decay=5e-4, schedule="cosine", final_lr_fraction=0.0,
                allow_true_label=False, procedure="union", decay_unmasked=False)


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("salun", cfg, batch_keys=("batch_size", "mask_batch_size"))
  common.check_alpha("salun", cfg["alpha"])
  check_procedure("salun", cfg)
  base.require("salun", isinstance(cfg["decay_unmasked"], bool),
               f"decay_unmasked must be true or false, got {cfg['decay_unmasked']!r}")
  if data is not None:
    common.check_forget("salun", data)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  base.check_split(data, state)
  n_f = data.num_forget
  with base.Timer() as timer:
    saliency = common.localization_masks(state, data.forget_x, data.forget_y,
                                         index=data.forget_index,
                                         alpha=float(cfg["alpha"]), criterion="grad",
                                         granularity="param",
                                         batch_size=int(cfg["mask_batch_size"]),
                                         model_axis=data.model_axis)
    salient_fraction = common.mask_fractions(saliency, state)
    if mask is not None:
      saliency = masking.mask_intersection(common.per_model_mask(mask, state), saliency)
    info = {"saliency_fraction": salient_fraction,
            "mask_fraction": common.mask_fractions(saliency, state)}
    return relabel_and_train(state, data, cfg, key, saliency,
                             allow_true_label=bool(cfg["allow_true_label"]), info=info,
                             extra_example_gradients=n_f, timer=timer)
