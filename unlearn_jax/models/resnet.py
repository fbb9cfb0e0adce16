"""ResNet-18 in two flavours and ResNet-50, all with the CIFAR stem (3x3 conv, stride 1, no max-pool), four
stages of two basic blocks with widths 64k, 128k, 256k, 512k and strides 1, 2, 2, 2, global
average pool and a dense classifier; `width` (k) scales every stage.

- `ResNet` (registered as `resnet18`): post-activation, torchvision's `BasicBlock`
  (torchvision/models/resnet.py) with the stem DEL-Unlearning's `unlearning_models.py` puts in
  (conv1 = 3x3 stride 1 without bias, max-pool removed). DEL and SalUn train it on CIFAR-10,
  Unrolling SGD a CIFAR-style post-activation ResNet-18 like it. At k = 1 with 10 classes it has
  torchvision's 11,173,962 parameters.
- `PreActResNet` (registered as `preact_resnet18`): pre-activation (He et al. 2016, "Identity
  Mappings in Deep Residual Networks"), final norm + ReLU before the pool, as the width-sweep
  studies (deep double descent; Alon & Dar, §2 of `30-overparam.md`) use it. `scale_stem=False`
  keeps its stem at 64 channels as in Alon & Dar's sweeps.

- `ResNet` with `Bottleneck` blocks (registered as `resnet50`): torchvision's ResNet-50 (v1.5:
  the stride sits on the 3x3 conv; stages of 3, 4, 6, 3 bottlenecks with 64k, 128k, 256k, 512k
  inner channels and 4x as many outputs) with the same CIFAR stem, as in the CIFAR ResNet-50 of
  kuangliu/pytorch-cifar that Alon & Dar's width sweeps build on; `width` scales the stem and
  every stage. At k = 1 with 10 classes it has 23,520,842 parameters (the published CIFAR-10
  ResNet-50 count).

Convolutions have no bias (as torchvision's); `param_init` chooses Flax's, torch.nn's or
torchvision's initializers (`layers.initializers`; 'torchvision' keeps torch.nn's default for the
stem of `ResNet`, which DEL's code swaps in after construction).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import Norm, conv, dense, scaled


class BasicBlock(nn.Module):
  """conv3x3(stride)-norm-ReLU-conv3x3-norm, plus the input (through conv1x1(stride)-norm when the
  shape changes), then ReLU: torchvision's `BasicBlock` (expansion 1)."""
  channels: int
  stride: int
  norm: str
  param_init: str

  @nn.compact
  def __call__(self, x, train: bool):
    out = conv(x, self.channels, 3, stride=self.stride, use_bias=False, init=self.param_init,
               name="conv0")
    out = nn.relu(Norm(self.norm, name="norm0")(out, train))
    out = conv(out, self.channels, 3, use_bias=False, init=self.param_init, name="conv1")
    out = Norm(self.norm, name="norm1")(out, train)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.channels:
      shortcut = conv(x, self.channels, 1, stride=self.stride, use_bias=False, init=self.param_init,
                      name="shortcut")
      shortcut = Norm(self.norm, name="shortcut_norm")(shortcut, train)
    return nn.relu(out + shortcut)


class Bottleneck(nn.Module):
  """conv1x1-norm-ReLU-conv3x3(stride)-norm-ReLU-conv1x1(4x)-norm, plus the input (through
  conv1x1(stride)-norm when the shape changes), then ReLU: torchvision's `Bottleneck` (v1.5,
  expansion 4). `channels` is the inner width; the block outputs 4 * channels."""
  channels: int
  stride: int
  norm: str
  param_init: str
  expansion: int = 4

  @nn.compact
  def __call__(self, x, train: bool):
    out_ch = self.expansion * self.channels
    out = conv(x, self.channels, 1, use_bias=False, init=self.param_init, name="conv0")
    out = nn.relu(Norm(self.norm, name="norm0")(out, train))
    out = conv(out, self.channels, 3, stride=self.stride, use_bias=False, init=self.param_init,
               name="conv1")
    out = nn.relu(Norm(self.norm, name="norm1")(out, train))
    out = conv(out, out_ch, 1, use_bias=False, init=self.param_init, name="conv2")
    out = Norm(self.norm, name="norm2")(out, train)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_ch:
      shortcut = conv(x, out_ch, 1, stride=self.stride, use_bias=False, init=self.param_init,
                      name="shortcut")
      shortcut = Norm(self.norm, name="shortcut_norm")(shortcut, train)
    return nn.relu(out + shortcut)


class ResNet(nn.Module):
  """Post-activation ResNet: stem conv3x3-norm-ReLU, stages of `block`s (`basic`: BasicBlock,
  `bottleneck`: Bottleneck), pool, classifier."""
  num_classes: int
  width: float = 1.0
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  base_widths: Sequence[int] = (64, 128, 256, 512)
  norm: str = "batch"
  param_init: str = "flax"
  block: str = "basic"

  @nn.compact
  def __call__(self, x, train: bool = False):
    # DEL replaces torchvision's conv1 after construction: the stem keeps torch.nn's default
    stem_init = "torch" if self.param_init == "torchvision" else self.param_init
    x = conv(x, scaled(self.base_widths[0], self.width), 3, use_bias=False, init=stem_init,
             name="stem")
    x = nn.relu(Norm(self.norm, name="stem_norm")(x, train))
    for s, (blocks, base) in enumerate(zip(self.stage_sizes, self.base_widths)):
      for b in range(blocks):
        stride = 2 if (s > 0 and b == 0) else 1
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[self.block]
        x = block(scaled(base, self.width), stride, self.norm, self.param_init,
                  name=f"stage{s}_block{b}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return dense(x, self.num_classes, init=self.param_init, name="classifier")


class PreActBlock(nn.Module):
  """norm-ReLU-conv3x3-norm-ReLU-conv3x3, with a 1x1 projection shortcut when the shape changes."""
  channels: int
  stride: int
  norm: str
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool):
    out = nn.relu(Norm(self.norm, name="norm0")(x, train))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.channels:
      shortcut = conv(out, self.channels, 1, stride=self.stride, use_bias=False,
                      init=self.param_init, name="shortcut")
    out = conv(out, self.channels, 3, stride=self.stride, use_bias=False, init=self.param_init,
               name="conv0")
    out = nn.relu(Norm(self.norm, name="norm1")(out, train))
    out = conv(out, self.channels, 3, use_bias=False, init=self.param_init, name="conv1")
    return out + shortcut


class PreActResNet(nn.Module):
  """Pre-activation ResNet: bias-free stem conv3x3, stages of `PreActBlock`s, norm-ReLU, pool,
  classifier."""
  num_classes: int
  width: float = 1.0
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  base_widths: Sequence[int] = (64, 128, 256, 512)
  norm: str = "batch"
  scale_stem: bool = True
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool = False):
    stem = scaled(64, self.width) if self.scale_stem else 64
    x = conv(x, stem, 3, use_bias=False, init=self.param_init, name="stem")
    for s, (blocks, base) in enumerate(zip(self.stage_sizes, self.base_widths)):
      for b in range(blocks):
        stride = 2 if (s > 0 and b == 0) else 1
        x = PreActBlock(scaled(base, self.width), stride, self.norm, self.param_init,
                        name=f"stage{s}_block{b}")(x, train)
    x = nn.relu(Norm(self.norm, name="final_norm")(x, train))
    x = jnp.mean(x, axis=(1, 2))
    return dense(x, self.num_classes, init=self.param_init, name="classifier")
