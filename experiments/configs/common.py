"""Config sections shared by every experiment, and the `key=value,...` argument parser (no
command of its own: imported by the experiment configs beside it).

`get_config("dataset=digits,model=cnn,seeds=2")` style arguments select variants; any field can
then be overridden on the command line, e.g. `--config.train.epochs=5`.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from unlearn_jax import runtime

# Per-dataset recipe defaults for the embedded CPU default and for TFDS datasets on GPU.
DATASET_PRESETS = {
    # Embedded CPU default: CNN at width 0.5 reaches ~96 % test accuracy on mnist5k in ~1 min
    # per group of 3 seeds on 2 cores (docs/platform.md).
    "mnist5k": dict(epochs=12, batch_size=64, learning_rate=0.1, model="cnn", width=0.5),
    "digits": dict(epochs=15, batch_size=64, learning_rate=0.1, model="cnn", width=0.5),
    # MNIST-1D (4,000 train sequences, 1x40): an MLP memorises its training set (train 100 %,
    # test ~73 %), so the original and the oracle differ on the forget set
    # (docs/results/benchmark_search/). No weight decay; vmap is faster than unrolled seeds
    # for MLPs on CPU (docs/platform.md).
    "mnist1d": dict(epochs=40, batch_size=64, learning_rate=0.1, model="mlp", weight_decay=0.0,
                    model_axis="vmap"),
    # DEL §7 recipe (CIFAR-10 / SVHN): SGD momentum 0.9, wd 0, batch 128, lr 0.1, cosine, 30 epochs,
    # on DEL's and SalUn's post-activation ResNet-18 started as torchvision starts it
    # (init="torchvision": DEL's Reset draws θ0 from it; docs/recipes_sources.md §12).
    "cifar10": dict(epochs=30, batch_size=128, learning_rate=0.1, model="resnet18",
                    init="torchvision", weight_decay=0.0),
    "cifar100": dict(epochs=30, batch_size=128, learning_rate=0.1, model="resnet18",
                     init="torchvision", weight_decay=0.0),
    "svhn_cropped": dict(epochs=30, batch_size=128, learning_rate=0.1, model="resnet18",
                         init="torchvision", weight_decay=0.0),
}
_GENERIC = dict(epochs=30, batch_size=128, learning_rate=0.1, model="resnet18")
DEFAULT_DATASET = "mnist1d"
DEFAULT_SEEDS = 4  # FQ of 4 method seeds vs 4 oracle seeds, and 4 more oracle seeds for the ceiling

# Named benchmark settings (`setting=NAME` in the config argument): a config argument and field
# overrides, measured in docs/results/benchmark_search/. `conv` is the best conv-net setting we
# found for a CPU (it memorises but generalises too well to pass the power targets; see there).
NAMED_SETTINGS = {
    "conv": ("dataset=mnist1d,model=cnn,width=1.0,epochs=60",
             {"train.weight_decay": 0.0, "data.max_train_examples": 2000}),
}


def parse_arg(arg: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
  """Parse 'k1=v1,k2=v2' into a dict; unknown keys give a one-line error listing the valid ones.

  `setting=NAME` (when allowed) expands to the named setting's own arguments first; keys given
  beside it win."""
  opts: dict[str, str] = {}
  for part in filter(None, (arg or "").split(",")):
    if "=" not in part:
      raise ValueError(f"config argument '{part}' is not key=value; valid keys: "
                       f"{', '.join(allowed)}")
    k, v = (s.strip() for s in part.split("=", 1))
    if k not in allowed:
      raise ValueError(f"unknown config argument '{k}'; valid keys: {', '.join(allowed)}")
    opts[k] = v
  if "setting" in opts:
    name = opts.pop("setting")
    if name not in NAMED_SETTINGS:
      raise ValueError(f"unknown setting '{name}'; choose from {', '.join(NAMED_SETTINGS)}")
    opts = {**parse_arg(NAMED_SETTINGS[name][0], allowed), **opts, "_setting": name}
  return opts


def apply_overrides(config, overrides: dict) -> None:
  """Set `section.field` values (the overrides of a named setting)."""
  for path, value in overrides.items():
    section, field = path.split(".")
    config[section][field] = value


def data_config(name: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name,
      data_dir=config_dict.placeholder(str),  # TFDS data_dir (prepared offline); None = default
      validation_fraction=0.1,
      test_fraction=0.2,       # bundled datasets only (TFDS datasets have their own test split)
      split_seed=0,
      max_train_examples=config_dict.placeholder(int),
  ))


def forget_config(kind: str = "iid") -> ml_collections.ConfigDict:
  """`kind="memorization"` (forget=memorization in the config argument) adds its own fields
  (level, mid_center, scores); the other kinds' forget sections are unchanged, so workdirs made
  before memorization forget sets existed are still reused."""
  cfg = ml_collections.ConfigDict(dict(
      kind=kind,               # iid | non_iid | classwise | confusion | memorization
      fraction=0.1,            # iid / non_iid / memorization
      count=config_dict.placeholder(int),  # iid / memorization: exact count instead of fraction
      classes=(2, 5),          # non_iid / classwise (DEL: CIFAR-10 classes 2 and 5)
      class_a=3, class_b=8,    # confusion
      num_examples=200,        # confusion: N/2 swapped from each class
      seed=0,                  # the draw (memorization: only the tie-breaking key)
  ))
  if kind == "memorization":  # RUM (arXiv 2406.01257): N examples by memorisation score
    cfg.level = "high"         # high | mid | low | mixed (N/3 of each)
    cfg.mid_center = "half"    # mid's centre: half = 0.5 (Feldman-Zhang scores) | median (proxies)
    # the scores .npz (`score`: float [num_train], NaN = no estimate), made by
    # `python -m experiments.memorization ... --workdir=DIR` as DIR/memorization.npz
    cfg.scores = config_dict.placeholder(str)
  return cfg


def model_config(name: str, dataset: str, width: float = 1.0,
                 init: str = "flax") -> ml_collections.ConfigDict:
  """`init`: 'flax' (Flax's default initializers) or 'torch'/'torchvision' (as the PyTorch papers
  start their nets); the torch-style ones take PyTorch's BatchNorm convention too (`batch_torch`:
  the unbiased batch variance in the running statistics, `models/layers.py`). The norm follows
  the init when the config is built (`init=` in the config argument or the dataset's preset); a
  later `--config.model.init=torch` keeps `norm`, so pass `--config.model.norm=batch_torch`
  with it."""
  norm = "batch_torch" if init in ("torch", "torchvision") else "batch"
  cfg = ml_collections.ConfigDict(dict(name=name, width=width, norm=norm, init=init))
  if name in ("resnet18", "preact_resnet18"):
    cfg.width = 0.125 if dataset in ("mnist5k", "digits") else 1.0
  if name == "preact_resnet18":
    cfg.scale_stem = True
  if name == "vit":
    cfg.patch_size = 2 if dataset == "digits" else 4
    cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio = 64, 4, 4, 2.0
  return cfg


def train_config(preset: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      epochs=preset["epochs"],
      batch_size=preset["batch_size"],
      learning_rate=preset["learning_rate"],
      momentum=0.9,
      weight_decay=preset.get("weight_decay", 5e-4),
      schedule="cosine",       # cosine | constant
      final_lr_fraction=0.0,
      eval_batch_size=1000,
      checkpoint_every=1,
      # Devices (jax.sharding): data = batches split over the local devices; models = seeds
      # split over all devices, each training its own (reference training; the methods run
      # data-parallel); none = one device. See README "Many seeds on GPUs and hosts".
      parallelism="data",
      # seeds in one program: vmap | unrolled | auto (unrolled on CPU)
      model_axis=preset.get("model_axis", "auto"),
  ))


def base_config(opts: dict[str, str]) -> ml_collections.ConfigDict:
  """Data, forget set, model, training recipe and seeds from the parsed argument."""
  dataset = opts.get("dataset", DEFAULT_DATASET)
  preset = dict(DATASET_PRESETS.get(dataset, _GENERIC))
  model = opts.get("model", preset["model"])
  config = ml_collections.ConfigDict()
  config.seeds = tuple(range(int(opts.get("seeds", DEFAULT_SEEDS))))
  # The oracle group's seeds; unset = twice as many as `seeds` (resolved by pipelines.validate, so it
  # follows --config.seeds too), for the report's forgetting-quality ceiling.
  config.oracle_seeds = (tuple(range(int(opts["oracle_seeds"]))) if "oracle_seeds" in opts
                         else config_dict.placeholder(tuple))
  config.data = data_config(dataset)
  config.forget = forget_config(opts.get("forget", "iid"))
  same_model = model == preset["model"]
  if not same_model:
    preset.pop("model_axis", None)  # chosen for the preset's model
  config.model = model_config(model, dataset, preset.get("width", 1.0) if same_model else 1.0,
                              preset.get("init", "flax"))
  if "width" in opts:
    config.model.width = float(opts["width"])
  if "epochs" in opts:
    preset["epochs"] = int(opts["epochs"])
  config.train = train_config(preset)
  config.progress = True
  config.deterministic = True  # deterministic GPU kernels (XLA_FLAGS), see unlearn_jax/determinism.py
  config.matmul_precision = "highest"  # float32 on GPU ('default' = TF32: faster, seeds drift)
  # Persistent XLA compilation cache (unlearn_jax/runtime.py); "" disables it.
  config.compilation_cache = runtime.default_cache_dir()
  # Several hosts: call jax.distributed.initialize() first (coordinator from the environment).
  config.distributed = False
  if "_setting" in opts:
    apply_overrides(config, NAMED_SETTINGS[opts["_setting"]][1])
  return config
