"""Small convolutional nets: a 3-layer CNN and All-CNN-C."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import Norm, conv, dense, scaled


class CNN(nn.Module):
  """3 conv layers (3x3, base widths 16/32/64 times `width`), each conv -> norm -> ReLU,
  2x2 max-pool after the first two, global average pool, dense classifier.

  The fast model of the embedded default (MNIST-sized inputs, CPU). `param_init`: 'flax' or 'torch'
  (`layers.initializers`), as for every model here.
  """
  num_classes: int
  width: float = 1.0
  base_widths: Sequence[int] = (16, 32, 64)
  norm: str = "batch"
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, base in enumerate(self.base_widths):
      x = conv(x, scaled(base, self.width), 3, use_bias=self.norm == "none", init=self.param_init,
               name=f"conv{i}")
      x = Norm(self.norm, name=f"norm{i}")(x, train)
      x = nn.relu(x)
      if i < len(self.base_widths) - 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    x = jnp.mean(x, axis=(1, 2))
    return dense(x, self.num_classes, init=self.param_init, name="classifier")


class AllCNN(nn.Module):
  """All-CNN-C (Springenberg et al. 2015) with width multiplier: channels 96k and 192k.

  conv3x3(96k) x2, conv3x3(96k, stride 2), conv3x3(192k) x2, conv3x3(192k, stride 2),
  conv3x3(192k), conv1x1(192k), conv1x1(num_classes) named `classifier`, global average pool.
  Each conv except the last is followed by norm and ReLU. Dropout of the original is omitted
  (the unlearning papers train without it).
  """
  num_classes: int
  width: float = 1.0
  norm: str = "batch"
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool = False):
    c1, c2 = scaled(96, self.width), scaled(192, self.width)
    plan = [(c1, 3, 1), (c1, 3, 1), (c1, 3, 2), (c2, 3, 1), (c2, 3, 1), (c2, 3, 2), (c2, 3, 1),
            (c2, 1, 1)]
    for i, (ch, k, s) in enumerate(plan):
      x = conv(x, ch, k, stride=s, use_bias=self.norm == "none", init=self.param_init,
               name=f"conv{i}")
      x = Norm(self.norm, name=f"norm{i}")(x, train)
      x = nn.relu(x)
    x = conv(x, self.num_classes, 1, init=self.param_init, name="classifier")
    return jnp.mean(x, axis=(1, 2))
