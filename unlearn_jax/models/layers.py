"""Shared building blocks: width scaling and selectable normalization."""

from __future__ import annotations

import flax.linen as nn

NORMS = ("batch", "group", "none")


def scaled(base: int, width: float) -> int:
  """Channels of a stage with base width `base` under width multiplier `width` (at least 1)."""
  return max(1, int(round(base * width)))


def check_width(width: float, model: str) -> None:
  if not width > 0:
    raise ValueError(f"model '{model}': width multiplier must be > 0, got {width}; "
                     "set --config.model.width to a positive number (e.g. 1.0)")


def check_norm(norm: str, model: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"model '{model}': unknown norm '{norm}'; choose one of {', '.join(NORMS)}")


def _group_count(channels: int, max_groups: int = 32) -> int:
  """Largest divisor of `channels` that is <= max_groups (GroupNorm needs one)."""
  for g in range(min(max_groups, channels), 0, -1):
    if channels % g == 0:
      return g
  return 1


class Norm(nn.Module):
  """BatchNorm (train/inference modes), GroupNorm or identity, chosen by name.

  BatchNorm uses PyTorch's defaults (momentum 0.1 in PyTorch terms, i.e. flax momentum 0.9,
  epsilon 1e-5), as the papers' reference code does.
  """
  kind: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool):
    if self.kind == "batch":
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
    if self.kind == "group":
      return nn.GroupNorm(num_groups=_group_count(x.shape[-1]), epsilon=1e-5)(x)
    if self.kind == "none":
      return x
    raise ValueError(f"unknown norm '{self.kind}'; choose one of {', '.join(NORMS)}")

