"""DEL (Deletion by Example Localization) = localize on D_f, Reset, Finetune on D_r.

Definition (`10-del.md` §4), per model:
  1. mask m = `localize.localization_mask` on the forget set (criterion `weighted_grad`
     s = |Σ_B θ* ⊙ ∇θ CE_B(θ*)|, model in inference mode; `channel` granularity with
     h = 10 % of the output channels; global top-α, α = 0.3);
  2. reset θ' = (1 − m) ⊙ θ* + m ⊙ θ0 with θ0 a *fresh* initialization from a new key (split
     from the method's key, not the original training init); BatchNorm running statistics are
     kept;
  3. finetune θ' on D_r only with cross-entropy, updating only m ∪ {whole classifier layer}
     (`masking.always_trainable(m, path_contains('classifier'))`; `classifier` names the head's
     layers, '+'-separated: DEL's ViT keeps all of `mlp_head` trainable, its LayerNorm too, i.e.
     `final_ln+classifier` in our ViT, the official recipe on `model=vit`); everything else stays
     bit-identical (weight decay 0 and the mask applied last); BatchNorm in training mode;
     SGD momentum 0.9, cosine decay to 0.01·lr.

Source: Torkzadehmahani, Nasirigerdeh, Kaissis, Rueckert, Dziugaite, Triantafillou, "Improved
Localized Machine Unlearning Through the Lens of Memorization", arXiv 2412.02432 (TMLR 2025),
and their public code (official recipe on CIFAR-10: lr 0.015, batch 128, 30 epochs).

Defaults: the official localization (weighted_grad, channel, h = 10 % of channels, α = 0.3) and
optimizer (SGD momentum 0.9, weight decay 0, cosine to 0.01·lr), with a shorter, faster
finetuning than the official 30 epochs at lr 0.015 / batch 128 (which costs about a retrain): 10
epochs at lr 0.05 / batch 64. On digits (small CNN, 10 % IID forget set) the official lr 0.015
left retain accuracy at ~0.94 after 10 epochs; lr 0.05 recovers ~0.99. Set the official values
through the config for the CIFAR/SVHN reproductions.

With a user `mask`, that mask replaces DEL's localization (no gradients on D_f are computed):
Reset + Finetune on the given mask, classifier still trainable. This is how other localization
strategies (random, shallowest, SalUn's ...) are paired with Reset + Finetune (`10-del.md` §6).
The localization options (criterion, granularity, top_h, batch size) are config values, so the
ablations of §5 run through this method too; criterion `weighted_grad_all` scores on D_r ∪ D_f.

One definition of DEL's mask serves the method, the study (`experiments.del_localization`) and
the main job: `localization_mask` with the options below.

Localization options beyond the paper's defaults:
  aggregation        `sum_then_abs` (default: s = |θ* ⊙ Σ_i ∇ CE_i|, every example of the scored
                     set weighing the same; computed from batch gradients of `mask_batch_size`,
                     which only sets the memory), `abs_then_sum` (Σ_i |θ* ⊙ g_i| from
                     per-example gradients, `pex`, in chunks of `pex_chunk_size`, 0 = from the
                     memory budget) or `batch_means` (|θ* ⊙ Σ_B ∇ CE_B|, the sum of batch-mean
                     gradients over consecutive batches of `mask_batch_size` as DEL's code
                     computes it: the examples of a partial last batch weigh more; with
                     `mask_drop_last` every batch is full and it is `sum_then_abs` / B);
  mask_drop_last     the official batching (`45-recipes.md`): the scored set shuffled by
                     `mask_shuffle_seed` (one permutation shared by every model) and its last
                     partial batch of `mask_batch_size` (128 officially) dropped, then the batch
                     means summed: on a forget set of 400, 16 examples are not scored.

`info`: `mask_fraction` (fraction of parameters reset, per model) and `trainable_fraction`
(reset mask plus classifier, per model). Cost counts the localization passes over the scored
data plus the finetuning passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from unlearn_jax import localize, masking, pex
from unlearn_jax.methods import base, common
from unlearn_jax.train import create_train_state, num_models

USES_FORGET = True
DEFAULTS = dict(alpha=0.3, criterion="weighted_grad", granularity="channel",
                top_h="ten_percent_of_channels", mask_batch_size=128, classifier="classifier",
                aggregation="sum_then_abs", mask_drop_last=False, mask_shuffle_seed=0,
                pex_chunk_size=0,
                epochs=10, batch_size=64, learning_rate=0.05, momentum=0.9, weight_decay=0.0,
                schedule="cosine", final_lr_fraction=0.01)

AGGREGATIONS = localize.AGGREGATIONS + ("batch_means",)

# DEL's official recipe (CIFAR-10 / ResNet-18, SVHN / ViT lr 0.05) is `recipe=official` in
# experiments/configs/recipes.py (with mask_drop_last=True and the per-epoch cosine), docs/recipes.md.


def fresh_params(data: base.UnlearnData, key):
  """θ0: a fresh initialization of `data.model` (stacked when `key` is `[N, 2]`)."""
  return create_train_state(data.model, optax.identity(), key, data.image_shape).params


def official_batches(x, y, batch_size: int, seed: int, index=None):
  """The official localization data (`45-recipes.md`): the scored set shuffled by `seed` (one
  permutation shared by every model) with the last partial batch of `batch_size` dropped, so the
  batch-mean gradients summed over it are those of DEL's `drop_last=True` loader. With a
  per-model `index` (`[N, n]`) the permutation reorders each model's positions: returns
  `(x, y, index)`, the kept rows of every model."""
  n = int(len(x)) if index is None else int(index.shape[-1])
  keep = (n // batch_size) * batch_size
  if keep == 0:
    raise base.MethodConfigError(
        f"method 'del': mask_drop_last with mask_batch_size={batch_size} drops all {n} scored "
        f"examples; lower mask_batch_size to at most {n}")
  perm = np.random.default_rng(seed).permutation(n)[:keep]
  if index is not None:
    return x, y, jnp.asarray(index)[:, perm]
  return jnp.asarray(x)[perm], jnp.asarray(y)[perm], None


def per_example_masks(state, x, y, cfg, index=None):
  """Per-model masks from per-example gradients (`pex`, chunked): `cfg['aggregation']`
  sum_then_abs |θ ⊙ Σ_i g_i| or abs_then_sum Σ_i |θ ⊙ g_i|, then channels and global top-α.
  With a per-model `index` (`[N, n]`) model k scores its own rows `x[index[k]]`: `pex` shares
  one batch across the models of a stacked call, so each model is scored by its own call here
  (one compiled program for all of them)."""
  stacked = base.is_stacked(state)
  chunk = int(cfg.get("pex_chunk_size", 0)) or None
  if index is not None:
    take = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)
    masks = [per_example_masks(take(state, k), jnp.asarray(x)[jnp.asarray(index)[k]],
                               jnp.asarray(y)[jnp.asarray(index)[k]], cfg)
             for k in range(num_models(state))]
    return jax.tree_util.tree_map(lambda *m: jnp.stack(m), *masks)
  scores = localize.per_example_scores(
      pex.inference_loss(state.apply_fn), state.params,
      (jnp.asarray(x), jnp.asarray(y, jnp.int32)), cfg["criterion"], cfg["aggregation"],
      consts=state.model_state, stacked=stacked, chunk_size=chunk)

  def one(s):
    if cfg["granularity"] == "channel":
      s = localize.aggregate_channels(s, cfg["top_h"])
    return localize.global_top_fraction_mask(s, float(cfg["alpha"]))

  if not stacked:
    return one(scores)
  masks = [one(jax.tree_util.tree_map(lambda a: a[i], scores))
           for i in range(num_models(state))]
  return jax.tree_util.tree_map(lambda *m: jnp.stack(m), *masks)


def localization_mask(state, x, y, cfg, *, index=None, model_axis: str = "auto"):
  """DEL's mask (step 1) per model on the scored rows (x, y): the criterion's scores under
  `cfg['aggregation']` (module docstring), channels, global top-α. `mask_drop_last` (the
  official batching) is applied by the caller (`official_batches`)."""
  aggregation = cfg.get("aggregation", "sum_then_abs")
  if aggregation == "abs_then_sum":
    return per_example_masks(state, x, y, cfg, index)
  return common.localization_masks(
      state, x, y, alpha=float(cfg["alpha"]), criterion=cfg["criterion"],
      granularity=cfg["granularity"], top_h=cfg["top_h"],
      batch_size=int(cfg["mask_batch_size"]), model_axis=model_axis, index=index,
      weighting="batch" if aggregation == "batch_means" else "example")


def localize_and_reset(state, data: base.UnlearnData, cfg, init_key, mask=None):
  """Steps 1-2: (reset state, reset mask, number of scored examples)."""
  scored = 0
  if mask is None:
    rows = data.train if cfg["criterion"] == "weighted_grad_all" else data.forget
    x, y, index = rows.x, rows.y, rows.index
    if cfg.get("mask_drop_last"):
      x, y, index = official_batches(x, y, int(cfg["mask_batch_size"]),
                                     int(cfg["mask_shuffle_seed"]), index)
    mask = localization_mask(state, x, y, cfg, index=index, model_axis=data.model_axis)
    scored = 0 if cfg["criterion"] == "weight" else (
        int(len(x)) if index is None else int(index.shape[-1]))
  else:
    mask = common.per_model_mask(mask, state)
  params = masking.reset(state.params, fresh_params(data, init_key), mask)
  return state.replace(params=params), mask, scored


def check_config(cfg, data: base.UnlearnData | None = None) -> None:
  common.check_sgd_config("del", cfg, batch_keys=("batch_size", "mask_batch_size"))
  common.check_alpha("del", cfg["alpha"])
  base.require("del", cfg["criterion"] in localize.CRITERIA,
               f"criterion must be one of {', '.join(localize.CRITERIA)}, got {cfg['criterion']!r}")
  base.require("del", cfg["granularity"] in localize.GRANULARITIES,
               f"granularity must be one of {', '.join(localize.GRANULARITIES)}, "
               f"got {cfg['granularity']!r}")
  base.require("del", cfg["aggregation"] in AGGREGATIONS,
               f"aggregation must be one of {', '.join(AGGREGATIONS)}, "
               f"got {cfg['aggregation']!r}")
  base.require("del", isinstance(cfg["mask_drop_last"], (bool, np.bool_)),
               f"mask_drop_last must be True or False, got {cfg['mask_drop_last']!r}")
  base.require("del", common.is_int(cfg["mask_shuffle_seed"]) and cfg["mask_shuffle_seed"] >= 0,
               f"mask_shuffle_seed must be an integer >= 0, got {cfg['mask_shuffle_seed']!r}")
  base.require("del", common.is_int(cfg["pex_chunk_size"]) and cfg["pex_chunk_size"] >= 0,
               f"pex_chunk_size must be an integer >= 0 (0: from the memory budget), "
               f"got {cfg['pex_chunk_size']!r}")
  try:
    localize.channel_top_h(cfg["top_h"], 10, 10)
  except ValueError as e:
    base.require("del", False, str(e))
  if data is not None:
    common.check_forget("del", data)
    common.check_batch("del", "batch_size", "retain", cfg["batch_size"], data.num_retain)


def unlearn(state, data: base.UnlearnData, cfg, key, mask=None) -> base.UnlearnResult:
  check_config(cfg, data)
  base.check_split(data, state)
  heads = [h for h in str(cfg["classifier"]).split("+") if h]
  is_classifier = masking.path_contains(*heads)
  paths = [masking.keypath_str(p) for p, _ in
           jax.tree_util.tree_flatten_with_path(state.params)[0]]
  for head in heads or [""]:
    base.require("del", any(map(masking.path_contains(head), paths)),
                 f"no parameter path has a component '{head}' (a layer of the head that stays "
                 f"trainable); set 'classifier' to its name ('+'-separated for several); "
                 f"paths: {paths}")
  with base.Timer() as timer:
    init_key, data_key = common.split_keys(key, base.is_stacked(state))
    state, reset_mask, scored = localize_and_reset(state, data, cfg, init_key, mask)
    trainable = masking.always_trainable(reset_mask, is_classifier)
    steps = base.steps_per_epoch(data.num_retain, cfg["batch_size"], data)
    tx = base.optimizer(cfg, cfg["epochs"] * steps, trainable)
    state = base.with_optimizer(state, tx, trainable)
    state = base.train_on(state, data.retain, key=data_key, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], data=data)
    info = {"mask_fraction": common.mask_fractions(reset_mask, state),
            "trainable_fraction": common.mask_fractions(trainable, state),
            "localized": mask is None}
  return base.result(state, timer, epochs=cfg["epochs"], info=info,
                     example_gradients=scored + cfg["epochs"] * steps * cfg["batch_size"])
