"""Pre-activation ResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks").

CIFAR stem (3x3 conv, stride 1, no max-pool), four stages of two basic blocks with widths
64k, 128k, 256k, 512k and strides 1, 2, 2, 2, final norm + ReLU, global average pool and a dense
classifier. `width` (k) scales every stage; `scale_stem=False` keeps the stem at 64 channels as in
Alon & Dar's width sweeps (§2 of `30-overparam.md`).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import Norm, scaled


class PreActBlock(nn.Module):
  """norm-ReLU-conv3x3-norm-ReLU-conv3x3, with a 1x1 projection shortcut when the shape changes."""
  channels: int
  stride: int
  norm: str

  @nn.compact
  def __call__(self, x, train: bool):
    out = nn.relu(Norm(self.norm, name="norm0")(x, train))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.channels:
      shortcut = nn.Conv(self.channels, (1, 1), strides=(self.stride, self.stride), use_bias=False,
                         name="shortcut")(out)
    out = nn.Conv(self.channels, (3, 3), strides=(self.stride, self.stride), padding="SAME",
                  use_bias=False, name="conv0")(out)
    out = nn.relu(Norm(self.norm, name="norm1")(out, train))
    out = nn.Conv(self.channels, (3, 3), padding="SAME", use_bias=False, name="conv1")(out)
    return out + shortcut


class PreActResNet(nn.Module):
  num_classes: int
  width: float = 1.0
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  base_widths: Sequence[int] = (64, 128, 256, 512)
  norm: str = "batch"
  scale_stem: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    stem = scaled(64, self.width) if self.scale_stem else 64
    x = nn.Conv(stem, (3, 3), padding="SAME", use_bias=False, name="stem")(x)
    for s, (blocks, base) in enumerate(zip(self.stage_sizes, self.base_widths)):
      for b in range(blocks):
        stride = 2 if (s > 0 and b == 0) else 1
        x = PreActBlock(scaled(base, self.width), stride, self.norm, name=f"stage{s}_block{b}")(
            x, train)
    x = nn.relu(Norm(self.norm, name="final_norm")(x, train))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, name="classifier")(x)
