"""PyTorch twins of unlearn_jax's CNN and MLP, for the benchmarks only (never imported by the
library or the tests; needs the `bench` extra: `pip install -e ".[bench]"`).

Same layers as `unlearn_jax/models/cnn.py` and `mlp.py` at a given width and norm: 3x3 convs
(no bias under BatchNorm) -> norm -> ReLU, 2x2 max-pool after all but the last conv (SAME
padding, i.e. `ceil_mode=True`), global average pool, dense classifier; the MLP flattens and
stacks Dense -> norm -> ReLU. BatchNorm uses momentum 0.1 / eps 1e-5 in PyTorch terms, as ours.
Inputs are NCHW. `count_params` must equal ours (the benchmark asserts it).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


def scaled(base: int, width: float) -> int:
  """As `unlearn_jax.models.layers.scaled`."""
  return max(1, int(round(base * width)))


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
  if kind == "batch":
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, eps=1e-5, momentum=0.1)
  if kind == "none":
    return nn.Identity()
  raise ValueError(f"torch twin: norm '{kind}' not implemented (batch, none)")


class CNN(nn.Module):
  """unlearn_jax.models.CNN: conv(16k/32k/64k) -> norm -> ReLU, pools, mean, Linear."""

  def __init__(self, in_channels: int, num_classes: int = 10, width: float = 1.0,
               base_widths=(16, 32, 64), norm: str = "batch"):
    super().__init__()
    layers, c = [], in_channels
    for i, base in enumerate(base_widths):
      out = scaled(base, width)
      layers += [nn.Conv2d(c, out, 3, padding=1, bias=norm == "none"), _norm(norm, out, 2),
                 nn.ReLU()]
      if i < len(base_widths) - 1:
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
      c = out
    self.features = nn.Sequential(*layers)
    self.classifier = nn.Linear(c, num_classes)

  def forward(self, x):
    return self.classifier(self.features(x).mean(dim=(2, 3)))


class MLP(nn.Module):
  """unlearn_jax.models.MLP: flatten, (Linear -> norm -> ReLU) per hidden width, Linear."""

  def __init__(self, in_features: int, num_classes: int = 10, width: float = 1.0,
               base_widths=(256, 256), norm: str = "batch"):
    super().__init__()
    layers, c = [nn.Flatten()], in_features
    for base in base_widths:
      out = scaled(base, width)
      layers += [nn.Linear(c, out), _norm(norm, out, 1), nn.ReLU()]
      c = out
    layers.append(nn.Linear(c, num_classes))
    self.net = nn.Sequential(*layers)

  def forward(self, x):
    return self.net(x)


def build(name: str, image_shape, num_classes: int = 10, *, width: float = 1.0,
          norm: str = "batch") -> nn.Module:
  """The twin of `unlearn_jax.models.build_model(name, ...)` for HWC `image_shape`."""
  h, w, c = image_shape
  if name == "cnn":
    return CNN(c, num_classes, width, norm=norm)
  if name == "mlp":
    return MLP(h * w * c, num_classes, width, norm=norm)
  raise ValueError(f"no torch twin of model '{name}' (cnn, mlp)")


def count_params(module: nn.Module) -> int:
  """Trainable scalars (BatchNorm running statistics excluded, as in ours)."""
  return sum(p.numel() for p in module.parameters() if p.requires_grad)


def make_optimizer(module: nn.Module, *, learning_rate: float, total_steps: int,
                   weight_decay: float, momentum: float = 0.9):
  """SGD with momentum and coupled weight decay plus a per-step cosine schedule, as
  `unlearn_jax.train.make_optimizer` (optax add_decayed_weights + sgd(momentum))."""
  opt = torch.optim.SGD(module.parameters(), lr=learning_rate, momentum=momentum,
                        weight_decay=weight_decay)
  sched = torch.optim.lr_scheduler.LambdaLR(
      opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
  return opt, sched


def train_step(module, opt, sched, x, y, idx):
  """One step on batch `idx` of (x, y): gather, forward, cross-entropy, backward, SGD, schedule."""
  xb, yb = x[idx], y[idx]
  loss = F.cross_entropy(module(xb), yb)
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()
  sched.step()
  return loss
