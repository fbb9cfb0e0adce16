"""Models by name, split into the pure-function pair every kernel of the library uses.

The contract (any framework can meet it; nothing outside `models/` imports a model):
  init(key, x) -> (params, model_state)
  apply(params, model_state, x, train) -> (logits, new_model_state)
`model_state` holds non-trainable collections (BatchNorm running statistics), `{}` if none.
With `train=True` BatchNorm uses batch statistics and returns updated running statistics; with
`train=False` it uses the running statistics and returns `model_state` unchanged.

Models (each with width multiplier `width`, `norm` batch/group/none except 'vit', and `init`):
  mlp              dense stack on flattened inputs
  cnn              3-layer conv net (the CPU default's conv model)
  allcnn           All-CNN-C (Springenberg et al. 2015; Alon & Dar)
  resnet18         post-activation ResNet-18, torchvision BasicBlock with a 3x3 stride-1 stem and
                   no max-pool: the model of DEL, SalUn and Unrolling SGD on CIFAR
  resnet50         post-activation ResNet-50 (torchvision Bottleneck, v1.5) with the same CIFAR
                   stem, width multiplier on the stem and every stage (Alon & Dar's third model)
  preact_resnet18  pre-activation ResNet-18: the width-sweep studies' model (Alon & Dar)
  vit              small ViT (DEL uses a ViT on SVHN)
`init`: 'flax' (Flax's defaults: LeCun-normal kernels, zero biases), 'torch' (torch.nn Conv2d /
Linear defaults, `layers.torch_uniform`) or 'torchvision' (as torchvision's ResNet constructor
leaves them: convolutions Kaiming-normal fan_out, BatchNorm 1/0, the classifier torch.nn's
default; in `resnet18` the stem keeps torch.nn's default, since DEL-Unlearning replaces conv1
after construction). DEL's Reset draws θ0 from its fresh torchvision ResNet-18, so the official
CIFAR recipe uses 'torchvision' (docs/recipes_sources.md §12).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from unlearn_jax.models.cnn import CNN, AllCNN
from unlearn_jax.models.layers import INITS, NORMS, check_init, check_norm, check_width
from unlearn_jax.models.mlp import MLP
from unlearn_jax.models.resnet import PreActResNet, ResNet
from unlearn_jax.models.vit import ViT

# name -> (constructor, options it accepts besides num_classes/width/norm/init)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    "mlp": (MLP, ("base_widths",)),
    "cnn": (CNN, ("base_widths",)),
    "allcnn": (AllCNN, ()),
    "resnet18": (lambda **kw: ResNet(stage_sizes=(2, 2, 2, 2), **kw), ()),
    "resnet50": (lambda **kw: ResNet(stage_sizes=(3, 4, 6, 3), block="bottleneck", **kw), ()),
    "preact_resnet18": (lambda **kw: PreActResNet(stage_sizes=(2, 2, 2, 2), **kw),
                        ("scale_stem",)),
    "vit": (ViT, ("patch_size", "dim", "depth", "heads", "mlp_ratio")),
}
MODELS = tuple(_REGISTRY)


@dataclasses.dataclass(frozen=True)
class Model:
  """A network as two pure functions plus its description."""
  name: str
  module: nn.Module
  init: Callable[[jax.Array, jax.Array], tuple[Any, Any]]
  apply: Callable[..., tuple[jax.Array, Any]]


def split_module(module: nn.Module, name: str = "custom") -> Model:
  """Wrap a flax.linen module whose `__call__(x, train)` returns logits into a `Model`."""

  def init(key, x):
    variables = module.init(key, x, train=False)
    params = variables["params"]
    return params, {k: v for k, v in variables.items() if k != "params"}

  def apply(params, model_state, x, train):
    variables = {"params": params, **model_state}
    if train and model_state:
      logits, updates = module.apply(variables, x, train=True, mutable=list(model_state))
      return logits, {**model_state, **updates}
    return module.apply(variables, x, train=train), model_state

  return Model(name=name, module=module, init=init, apply=apply)


def build_model(name: str, num_classes: int, *, width: float = 1.0, norm: str = "batch",
                init: str = "flax", **options) -> Model:
  """Build a registered model by name.

  Args:
    name: one of `MODELS`.
    num_classes: size of the classifier output.
    width: width multiplier k (> 0) that scales every stage.
    norm: 'batch', 'batch_torch' (PyTorch's running variance), 'group' or 'none' (ignored by
      'vit', which uses LayerNorm).
    init: 'flax' or 'torch' (see the module docstring; the modules' field `param_init`).
    **options: model-specific options (see `model_options(name)`); `None` values are ignored.
  """
  if name not in _REGISTRY:
    raise ValueError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
  check_width(width, name)
  check_init(init, name)
  ctor, allowed = _REGISTRY[name]
  options = {k: v for k, v in options.items() if v is not None}
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"model '{name}' has no option(s) {unknown}; it accepts {list(allowed)}")
  if not (isinstance(num_classes, (int, np.integer)) and num_classes >= 2):
    raise ValueError(f"model '{name}': num_classes must be an integer >= 2, got {num_classes}")
  kwargs = dict(num_classes=int(num_classes), width=float(width), param_init=init, **options)
  if name != "vit":
    check_norm(norm, name)
    kwargs["norm"] = norm
  return split_module(ctor(**kwargs), name)


def model_options(name: str) -> tuple[str, ...]:
  return _REGISTRY[name][1]


def init_model(model: Model, key: jax.Array, image_shape) -> tuple[Any, Any]:
  """Initialise (params, model_state) for inputs of shape `image_shape` (H, W, C), jitted."""
  sample = jnp.zeros((1, *image_shape), jnp.float32)
  return jax.jit(model.init)(key, sample)


def count_params(params) -> int:
  """Number of trainable scalars in a params pytree."""
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def build_model_from_config(model_config: Mapping[str, Any], num_classes: int) -> Model:
  """`build_model` from a config dict with keys name, width, norm, init and model options."""
  cfg = dict(model_config)
  name = cfg.pop("name")
  width = cfg.pop("width", 1.0)
  norm = cfg.pop("norm", "batch")
  init = cfg.pop("init", "flax")
  allowed = _REGISTRY[name][1] if name in _REGISTRY else ()
  options = {k: v for k, v in cfg.items() if k in allowed}
  return build_model(name, num_classes, width=width, norm=norm, init=init, **options)


__all__ = ["INITS", "MODELS", "NORMS", "Model", "build_model", "build_model_from_config",
           "count_params", "init_model", "model_options", "split_module", "CNN", "AllCNN", "MLP",
           "PreActResNet", "ResNet", "ViT"]
