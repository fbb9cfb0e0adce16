"""python -m experiments.configs.recipes [--write docs/recipes.md]

Named recipes of the unlearning methods (`45-recipes.md`), selected by `recipe=` in the config
argument of `experiments/configs/unlearn.py` (no command of its own beyond printing the table):

  fast      our small-scale defaults: each method module's DEFAULTS, with the per-dataset values
            chosen by `python -m experiments.tune` (`METHOD_PRESETS`; docs/results/tuning_*/).
  official  the public code's procedure and numbers, for the dataset/model the paper used
            (CIFAR-10 / ResNet-18 unless said; per-dataset values in `OFFICIAL_BY_DATASET`).
            Every value cites the file it comes from (repository@commit: path, lines), as read
            in the source review docs/recipes_sources.md. Values that no public script sets are
            marked "not scripted" with where the number comes from instead.

A field the recipe does not name keeps the module DEFAULT (an option of ours with no counterpart
in the public code, e.g. `model_axis`-related batch sizes of a gradient pass). Any field stays
overridable on the command line (`--config.method_configs.<method>.<field>=...`); the report then
names the recipe and the fields changed from it.

`python -m experiments.configs.recipes` prints the method x recipe x hyperparameter table with
sources; `--write docs/recipes.md` regenerates the committed copy (a test keeps it current).
"""

from __future__ import annotations

import sys

RECIPES = ("fast", "official")

# Per-dataset hyperparameters chosen by `python -m experiments.tune` (privacy goal, λ = 0.4, on
# the validation split; commands and tables in docs/results/tuning_<dataset>/). They override the
# module DEFAULTS (chosen on digits) for that dataset only, in the `fast` recipe.
METHOD_PRESETS = {
    "mnist5k": {
        "ga": {"learning_rate": 0.001},
        "neggrad": {"learning_rate": 0.001},
        "single_gradient": {"learning_rate": 0.0005},  # fixed form (tuning_mnist5k README)
        "del": {"alpha": 0.05, "learning_rate": 0.05},
    },
    # docs/results/tuning_mnist1d/ (ssd and del: their defaults were selected)
    "mnist1d": {
        "ga": {"learning_rate": 0.001},
        "neggrad": {"learning_rate": 0.002},
        "single_gradient": {"learning_rate": 0.001},  # fixed form (tuning_mnist1d README)
    },
}

# Repositories at the commits the source review read (docs/recipes_sources.md).
SALUN = "OPTML-Group/Unlearn-Saliency@a6e89fd"
SALUN_PAPER = "OPTML-Group/Unlearn-Saliency@9576623"  # README of the paper's time
DEL = "reihaneh-torkzadehmahani/DEL-Unlearning@b1f732c"
SSD = "if-loops/selective-synaptic-dampening@cdfdc0e"
SCRUB = "meghdadk/SCRUB@98ffb11"
SPARSE = "OPTML-Group/Unlearn-Sparse@80ba55d"
UNROLL = "cleverhans-lab/unrolling-sgd@49e001f"

_SALUN_SGD = {  # SalUn / Unlearn-Sparse: SGD(momentum, weight_decay) with MultiStepLR(91, 136)
    "momentum": (0.9, f"{SALUN}: Classification/arg_parser.py L71 (--momentum)"),
    "weight_decay": (5e-4, f"{SALUN}: Classification/arg_parser.py L72 (--weight_decay)"),
    # milestones 91/136 are never reached in <= 10 epochs: the lr is constant
    "schedule": ("constant", f"{SALUN}: Classification/unlearn/impl.py L95-97, arg_parser.py L78"),
    "batch_size": (256, f"{SALUN}: Classification/arg_parser.py L69 (--batch_size default)"),
}
_SALUN_RL = {
    **_SALUN_SGD,
    # each epoch: forget pass, labels torch.randint per batch over all classes, then retain pass
    "procedure": ("forget_then_retain",
                  f"{SALUN}: Classification/unlearn/RL.py L109-159 (cifar10/svhn branch)"),
    "allow_true_label": (True, f"{SALUN}: Classification/unlearn/RL.py L123-125 (torch.randint)"),
    # README's SalUn (masked) command; the repo gives no lr for unmasked RL (borrowed here)
    "learning_rate": (0.013, f"{SALUN}: Classification/README.md L34 (SalUn command)"),
    "epochs": (10, f"{SALUN}: Classification/README.md L34 (--unlearn_epochs 10)"),
}
_DEL_SGD = {  # DEL-Unlearning: SGD(momentum 0.9), absl flags
    "momentum": (0.9, f"{DEL}: unlearn.py L231"),
    "weight_decay": (0.0, f"{DEL}: unlearn.py L41 (--weight_decay default 0)"),
}

# method -> field -> (value, source)
OFFICIAL = {
    "finetune": {
        **_SALUN_SGD,
        "learning_rate": (0.01, f"{SALUN_PAPER}: Classification/README.md (FT command)"),
        "epochs": (10, f"{SALUN_PAPER}: Classification/README.md (FT command)"),
    },
    "ga": {  # DEL's GA (45-recipes.md): ⌊|D_r|/128⌋ cycled forget batches per epoch
        **_DEL_SGD,
        "epoch_length": ("retain", f"{DEL}: unlearn.py L146 (zip(retain_dl, cycle(forget_dl)))"),
        "batch_size": (128, f"{DEL}: unlearning_datasets.py L270-271 (forget loader, drop_last)"),
        "retain_batch_size": (128, f"{DEL}: unlearning_datasets.py L270-271"),
        "schedule": ("constant", f"{DEL}: unlearn.py L236-238 (LambdaLR 1.0)"),
        "learning_rate": (0.015, f"{DEL}: unlearn.py L40 (absl default; not scripted)"),
        "epochs": (50, f"{DEL}: unlearn.py L42 (absl default; not scripted)"),
    },
    "neggrad": {  # SCRUB's NegGrad, large-scale version (helper/loops.py train_negrad)
        "form": ("weighted", f"{SCRUB}: thirdparty/repdistiller/helper/loops.py L12-76"),
        "alpha": (0.9999, f"{SCRUB}: large_scale_ictest.ipynb cells 8, 27"),
        "train_mode": (True, f"{SCRUB}: helper/loops.py train_negrad (model.train())"),
        "l2": (0.0, f"{SCRUB}: helper/loops.py train_negrad (no L2 term)"),
        "learning_rate": (0.01, f"{SCRUB}: large_scale_ictest.ipynb cell 27"),
        "momentum": (0.0, f"{SCRUB}: helper/loops.py (plain SGD)"),
        "weight_decay": (0.0, f"{SCRUB}: helper/loops.py (SGD weight_decay 0)"),
        "schedule": ("constant", f"{SCRUB}: large_scale_ictest.ipynb (no scheduler)"),
        "epochs": (10, f"{SCRUB}: large_scale_ictest.ipynb cell 40"),
        "retain_batch_size": (128, f"{SCRUB}: large_scale_ictest.ipynb cell 8"),
        "batch_size": (32, f"{SCRUB}: large_scale_ictest.ipynb cell 8 (forget loader)"),
        "forget_cycle": ("epoch", f"{SCRUB}: helper/loops.py (zip(retain, cycle(forget)))"),
    },
    "neggrad_plus": {  # DEL's negrad+
        **_DEL_SGD,
        "beta": (0.99, f"{DEL}: unlearn.py L159-163 (0.99·CE_r − 0.01·CE_f)"),
        "batch_size": (128, f"{DEL}: unlearning_datasets.py L270-271 (retain, drop_last)"),
        "forget_batch_size": (128, f"{DEL}: unlearning_datasets.py L270-271 (forget, drop_last)"),
        "forget_cycle": ("epoch", f"{DEL}: unlearn.py L146 (itertools.cycle(forget_dl))"),
        "schedule": ("constant", f"{DEL}: unlearn.py L236-238 (LambdaLR 1.0)"),
        "learning_rate": (0.015, f"{DEL}: unlearn.py L40 (absl default; not scripted)"),
        "epochs": (50, f"{DEL}: unlearn.py L42 (absl default; not scripted)"),
    },
    "random_label": dict(_SALUN_RL),
    "salun": {
        **_SALUN_RL,
        "alpha": (0.5, f"{SALUN}: Classification/README.md L34 (mask/with_0.5.pt), "
                       "generate_mask.py L50-82"),
        "mask_batch_size": (256, f"{SALUN}: Classification/generate_mask.py L14-48 (forget "
                                 "loader, --batch_size)"),
        # the fixed code (Feb 2026); True reproduces the pre-fix code of the published runs
        "decay_unmasked": (False, f"{SALUN}: Classification/unlearn/RL.py L17-49 (Fix weight "
                                  "decay #33)"),
    },
    "l1_sparse": {
        **{k: (v, s.replace(SALUN, SPARSE).replace("Classification/", ""))
           for k, (v, s) in _SALUN_SGD.items()},
        "penalty_decay": ("epoch", f"{SPARSE}: unlearn/FT.py L92-100 (alpha·(1 − epoch/E))"),
        "learning_rate": (0.01, f"{SPARSE}: README.MD L86"),
        "epochs": (10, f"{SPARSE}: README.MD L86"),
        # README passes --alpha ${alpha}: no value in the code; the paper's range (40-methods.md)
        "gamma": (5e-5, f"not in the code ({SPARSE}: README.MD L86 placeholder); "
                        "40-methods.md γ ≈ 5e-5 to 7e-5"),
    },
    "scrub": {  # large_scale_unlearning.ipynb
        "learning_rate": (5e-4, f"{SCRUB}: large_scale_unlearning.ipynb cell 32"),
        "epochs": (3, f"{SCRUB}: large_scale_unlearning.ipynb cell 32 (sgda_epochs)"),
        "max_steps": (2, f"{SCRUB}: large_scale_unlearning.ipynb cells 32, 36 (msteps)"),
        # epoch > milestone with epochs 1..3: the decay never fires in this recipe
        "lr_decay_epochs": ("3,5,9", f"{SCRUB}: large_scale_unlearning.ipynb cell 32; "
                                     "helper/util.py L22-30"),
        "lr_decay_rate": (0.1, f"{SCRUB}: large_scale_unlearning.ipynb cell 32"),
        "temperature": (4.0, f"{SCRUB}: large_scale_unlearning.ipynb cell 32 (kd_T)"),
        "gamma": (0.99, f"{SCRUB}: large_scale_unlearning.ipynb cell 32"),
        "alpha": (0.001, f"{SCRUB}: large_scale_unlearning.ipynb cell 32"),
        "momentum": (0.9, f"{SCRUB}: large_scale_unlearning.ipynb cells 32, 34"),
        "weight_decay": (5e-4, f"{SCRUB}: large_scale_unlearning.ipynb cells 32, 34"),
        "schedule": ("constant", f"{SCRUB}: large_scale_unlearning.ipynb cell 36"),
        "forget_batch_size": (512, f"{SCRUB}: large_scale_unlearning.ipynb cell 28"),
        "retain_batch_size": (256, f"{SCRUB}: large_scale_unlearning.ipynb cell 28"),
    },
    "ssd": {
        "selection": (10.0, f"{SSD}: src/forget_random_main.py L126-130, L148"),
        "dampening": (1.0, f"{SSD}: src/forget_random_main.py L147"),
        "batch_size": (128, f"{SSD}: src/forget_random_main.py L57, L120, L133-136"),
    },
    "bad_teacher": {
        "optimizer": ("adam", f"{SSD}: src/forget_random_strategies.py L150"),
        "learning_rate": (1e-4, f"{SSD}: src/forget_random_strategies.py L150"),
        "epochs": (1, f"{SSD}: src/forget_random_strategies.py L166"),
        "batch_size": (256, f"{SSD}: src/forget_random_strategies.py L155-158"),
        "temperature": (1.0, f"{SSD}: src/forget_random_strategies.py L149"),
        "retain_fraction": (0.3, f"{SSD}: src/forget_random_strategies.py L151-153"),
        "reduction": ("mean", f"{SSD}: src/unlearn.py L11-23 (F.kl_div default)"),
    },
    "amnesiac": {
        "optimizer": ("adam", f"{SSD}: src/unlearn.py L57-60 (fit_one_unlearning_cycle)"),
        "learning_rate": (1e-4, f"{SSD}: src/forget_random_strategies.py L214-216"),
        "batch_size": (128, f"{SSD}: src/forget_random_strategies.py L207-212"),
        "epochs": (3, f"{SSD}: src/forget_random_strategies.py L215"),
        "schedule": ("constant", f"{SSD}: src/unlearn.py L62-74 (no scheduler)"),
    },
    "del": {  # reset+finetune, scripts/run_unlearn.sh (CIFAR-10 / ResNet-18)
        **_DEL_SGD,
        "learning_rate": (0.015, f"{DEL}: scripts/run_unlearn.sh L6-7, L51-54"),
        "epochs": (30, f"{DEL}: scripts/run_unlearn.sh L6-7, L51-54"),
        "batch_size": (128, f"{DEL}: unlearn.py L39 (absl default = the script's unpassed 128)"),
        "schedule": ("cosine_epoch", f"{DEL}: unlearn.py L232-233, L191 (CosineAnnealingLR per "
                                     "epoch)"),
        "final_lr_fraction": (0.01, f"{DEL}: unlearn.py L232-233 (eta_min = 0.01·lr)"),
        "alpha": (0.3, f"{DEL}: scripts/run_unlearn.sh L12 (thr_0.3)"),
        "criterion": ("weighted_grad", f"{DEL}: scripts/run_generat_mask.sh L33-36"),
        "granularity": ("channel", f"{DEL}: scripts/run_generat_mask.sh L33-36"),
        "top_h": ("ten_percent_of_channels", f"{DEL}: generate_mask.py L111-113 (k = int(0.1·rows))"),
        "mask_batch_size": (128, f"{DEL}: generate_mask.py L69-90 (forget loader, batch 128)"),
        "mask_drop_last": (True, f"{DEL}: generate_mask.py (forget loader drop_last=True; sum of "
                                 "batch means)"),
        "aggregation": ("batch_means", f"{DEL}: generate_mask.py L69-164 (abs of Σ_batches θ·∇ "
                                       "of the batch-mean loss)"),
    },
}

OFFICIAL["single_gradient"] = {
    # θ + n·η·∇L_B*(w_0), L the mean CE over B* (one training batch), M_pretrain.train()
    "form": ("fixed", f"{UNROLL}: Unlearning/correlation_verification.py L259-276"),
    "learning_rate": (0.1, f"{UNROLL}: Unlearning/correlation_verification.py L59 (--lr; "
                           "the cosine scheduler is never stepped)"),
    "momentum": (0.0, f"{UNROLL}: Unlearning/correlation_verification.py L271-276 (no momentum "
                      "correction)"),
    "reference": ("initial", f"{UNROLL}: Unlearning/correlation_verification.py L160, L259-270 "
                             "(gradient at M_pretrain)"),
}

# dataset -> method -> field -> (value, source), on top of OFFICIAL
OFFICIAL_BY_DATASET = {
    "svhn_cropped": {
        "del": {"learning_rate": (0.05, f"{DEL}: scripts/run_unlearn.sh L15-23 (SVHN/ViT)")},
    },
}

# model -> method -> field -> (value, source), on top of the dataset's: the public code branches
# on the model (DEL's ViT for SVHN). Resolved when the config is built, i.e. from `model=vit` in
# the config argument (a later --config.model.name=vit keeps the method configs as they were).
OFFICIAL_BY_MODEL = {
    "vit": {
        "del": {
            "top_h": ("all", f"{DEL}: generate_mask.py L111-117 (model 'vit': flatten_grads."
                             "mean(dim=1), the plain mean of each output row)"),
            "classifier": ("final_ln+classifier", f"{DEL}: unlearn.py L178-181, "
                                                  "unlearning_models.py L243-246 (all of "
                                                  "`mlp_head`, its LayerNorm and Linear, stays "
                                                  "trainable; ours: final_ln + classifier)"),
        },
    },
}

# What `official` means for methods without a public recipe of their own.
NO_OFFICIAL = {
    "retrain": "the reference training recipe of config.train (the oracle's)",
}
# Fields every recipe takes from the config's reference training (experiments/configs/unlearn.py).
FROM_TRAINING = {"single_gradient": {
    "visits": "config.train.epochs (n: how often training visited D_f)",
    "train_batch_size": "config.train.batch_size (B of the training: the scale is size(D_f)/B)"}}


def official_values(name: str, dataset: str | None, model: str | None = None) -> dict:
  """field -> (value, source) of the official recipe of `name` on `dataset` with `model`."""
  table = dict(OFFICIAL.get(name, {}))
  table.update(OFFICIAL_BY_DATASET.get(dataset, {}).get(name, {}))
  table.update(OFFICIAL_BY_MODEL.get(model, {}).get(name, {}))
  return table


def recipe_values(name: str, dataset: str | None, recipe: str, defaults: dict,
                  model: str | None = None) -> dict:
  """The method's hyperparameters under `recipe`: its module `defaults` with the recipe's values."""
  if recipe not in RECIPES:
    raise ValueError(f"unknown recipe '{recipe}'; choose one of {', '.join(RECIPES)}")
  values = dict(defaults)
  if recipe == "fast":
    values.update(METHOD_PRESETS.get(dataset, {}).get(name, {}))
  else:
    values.update({k: v for k, (v, _) in official_values(name, dataset, model).items()})
  return values


def source_of(name: str, field: str, dataset: str | None, recipe: str,
              model: str | None = None) -> str:
  """Where a value of the recipe comes from."""
  if field in FROM_TRAINING.get(name, {}):
    return FROM_TRAINING[name][field]
  if recipe == "official":
    entry = official_values(name, dataset, model).get(field)
    if entry is not None:
      return entry[1]
    return NO_OFFICIAL.get(name, "ours (module DEFAULTS; no counterpart in the public code)")
  if field in METHOD_PRESETS.get(dataset, {}).get(name, {}):
    return f"tuned on {dataset} (docs/results/tuning_{dataset}/)"
  return "ours (module DEFAULTS)"


def _fmt(v) -> str:
  return repr(v) if isinstance(v, str) else str(v)


def to_markdown(datasets=("mnist1d", "cifar10", "svhn_cropped")) -> str:
  """The method x recipe x hyperparameter table, one section per method."""
  from unlearn_jax.methods import METHODS, get_method
  out = ["# Recipes of the unlearning methods", "",
         "Generated by `python -m experiments.configs.recipes --write docs/recipes.md` from "
         "`experiments/configs/recipes.py`; do not edit by hand. Select a recipe with "
         "`--config=experiments/configs/unlearn.py:recipe=official` (default `fast`); any field "
         "stays overridable, e.g. `--config.method_configs.del.epochs=10`. `fast` is shown for "
         f"`{datasets[0]}` (the default benchmark) and `official` for `{datasets[1]}`; rows "
         "marked † differ on another dataset (listed below the table); ‡ marks a `fast` value "
         f"tuned on `{datasets[0]}` (docs/results/tuning_{datasets[0]}/). The sources are the "
         "files read in the source review `docs/recipes_sources.md` (repository@commit: path, "
         "lines).", ""]
  for name in METHODS:
    if name == "retrain":
      continue
    defaults = dict(get_method(name).DEFAULTS)
    fast = recipe_values(name, datasets[0], "fast", defaults)
    off = recipe_values(name, datasets[1], "official", defaults)
    out += [f"## `{name}`", ""]
    if name in NO_OFFICIAL:
      out += [f"No public-code recipe: `official` = {NO_OFFICIAL[name]}.", ""]
    out += ["| hyperparameter | fast | official | official source |", "|---|---|---|---|"]
    others = []
    for field in defaults:
      mark = ""
      for d in datasets[2:]:
        other = recipe_values(name, d, "official", defaults)[field]
        if other != off[field]:
          mark = " †"
          others.append(f"- `{d}`: {field} = {_fmt(other)} "
                        f"({source_of(name, field, d, 'official')})")
      tuned = " ‡" if field in METHOD_PRESETS.get(datasets[0], {}).get(name, {}) else ""
      out.append(f"| {field} | {_fmt(fast[field])}{tuned} | {_fmt(off[field])}{mark} | "
                 f"{source_of(name, field, datasets[1], 'official')} |")
    for model, methods in OFFICIAL_BY_MODEL.items():
      for field, (value, _) in methods.get(name, {}).items():
        others.append(f"- model `{model}`: {field} = {_fmt(value)} "
                      f"({source_of(name, field, datasets[1], 'official', model)})")
    out += [""] + (others + [""] if others else [])
  return "\n".join(out)


if __name__ == "__main__":
  text = to_markdown()
  if len(sys.argv) == 3 and sys.argv[1] == "--write":
    with open(sys.argv[2], "w") as f:
      f.write(text + "\n")
  else:
    print(text)
