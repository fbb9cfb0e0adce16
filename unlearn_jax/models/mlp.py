"""Multi-layer perceptron on flattened images."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from unlearn_jax.models.layers import Norm, dense, scaled


class MLP(nn.Module):
  """Dense -> norm -> ReLU stack; hidden widths are `base_widths` scaled by `width`."""
  num_classes: int
  width: float = 1.0
  base_widths: Sequence[int] = (256, 256)
  norm: str = "none"
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape((x.shape[0], -1))
    for i, base in enumerate(self.base_widths):
      x = dense(x, scaled(base, self.width), init=self.param_init, name=f"dense{i}")
      x = Norm(self.norm, name=f"norm{i}")(x, train)
      x = nn.relu(x)
    return dense(x, self.num_classes, init=self.param_init, name="classifier")
