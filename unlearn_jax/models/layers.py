"""Shared building blocks: width scaling, selectable normalization and initialization."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMS = ("batch", "batch_torch", "group", "none")
INITS = ("flax", "torch", "torchvision")


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


def check_init(init: str, model: str) -> None:
  if init not in INITS:
    raise ValueError(f"model '{model}': unknown init '{init}'; choose one of {', '.join(INITS)}")


def torch_uniform(fan_in: int):
  """Initializer U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch.nn Conv2d/Linear `reset_parameters`.

  torch.nn.modules.conv and .linear draw weights with kaiming_uniform_(a=sqrt(5)), i.e.
  U(-b, b) with b = gain * sqrt(3 / fan_in) and gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), so
  b = 1/sqrt(fan_in); biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Same bound for both.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def kaiming_normal_fan_out(fan_out: int):
  """N(0, 2 / fan_out): `nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`, what
  torchvision's ResNet constructor applies to every Conv2d it creates (fan_out = k·k·out)."""
  std = math.sqrt(2.0 / fan_out)

  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.normal(key, shape, dtype)

  return init


def initializers(init: str, fan_in: int, fan_out: int | None = None) -> dict:
  """kernel_init/bias_init keyword arguments of a layer with `fan_in` inputs per output.

  'flax': none (Flax's defaults: LeCun-normal kernels, zero biases); 'torch': `torch_uniform`
  (torch.nn's layer defaults); 'torchvision': as torchvision's ResNet starts, convolutions
  (given `fan_out`) `kaiming_normal_fan_out` with zero biases, dense layers torch.nn's default.
  """
  if init == "flax":
    return {}
  if init == "torchvision" and fan_out is not None:
    return dict(kernel_init=kaiming_normal_fan_out(fan_out), bias_init=nn.initializers.zeros)
  if init in ("torch", "torchvision"):
    return dict(kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in))
  raise ValueError(f"unknown init '{init}'; choose one of {', '.join(INITS)}")


def conv(x, features: int, kernel: int, *, init: str, name: str, stride: int = 1,
         padding="SAME", use_bias: bool = True):
  """A square `kernel` x `kernel` nn.Conv applied to `x` (NHWC), initialized by `init`.

  Flax kernels are HWIO, so fan_in = kernel * kernel * in_channels as in torch.nn.Conv2d.
  """
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                 use_bias=use_bias, name=name,
                 **initializers(init, kernel * kernel * x.shape[-1], kernel * kernel * features))(x)


def dense(x, features: int, *, init: str, name: str):
  """nn.Dense applied to `x` (kernel [in, out], fan_in = in_features), initialized by `init`."""
  return nn.Dense(features, name=name, **initializers(init, x.shape[-1]))(x)


def _group_count(channels: int, max_groups: int = 32) -> int:
  """Largest divisor of `channels` that is <= max_groups (GroupNorm needs one)."""
  for g in range(min(max_groups, channels), 0, -1):
    if channels % g == 0:
      return g
  return 1


class TorchBatchNorm(nn.Module):
  """BatchNorm with PyTorch's running statistics (`torch.nn.BatchNorm2d` defaults).

  In training mode the batch is normalised by its mean and *biased* variance (as in Flax and
  PyTorch), and the running variance is updated with the *unbiased* batch variance
  var · n / (n − 1), n the number of values per channel (PyTorch), where Flax's `nn.BatchNorm`
  uses the biased one: ra_var ← 0.9 · ra_var + 0.1 · var_unbiased (momentum 0.1 in PyTorch's
  terms), ra_mean likewise. Parameters `scale`/`bias` and statistics `mean`/`var` carry Flax's
  names, so the two are interchangeable in a checkpoint.
  """
  use_running_average: bool
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    xf = x.astype(jnp.float32)  # statistics in float32, as Flax's BatchNorm
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(xf, axes)
      var = jnp.mean(jnp.square(xf - mean), axes)
      n = x.size // c
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * mean
        ra_var.value = m * ra_var.value + (1 - m) * var * (n / max(n - 1, 1))
    y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon)
    return (y * scale + bias).astype(x.dtype)


class Norm(nn.Module):
  """BatchNorm (train/inference modes), GroupNorm or identity, chosen by name.

  `batch`: Flax's `nn.BatchNorm` with PyTorch's momentum and epsilon (momentum 0.1 in PyTorch
  terms, i.e. flax momentum 0.9, epsilon 1e-5) but Flax's running variance (the biased batch
  variance). `batch_torch`: `TorchBatchNorm`, PyTorch's convention in full (the unbiased batch
  variance in the running statistics); the torch-style configs (`init='torchvision'`) use it.
  """
  kind: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool):
    if self.kind == "batch":
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
    if self.kind == "batch_torch":
      return TorchBatchNorm(use_running_average=not train, name="BatchNorm_0")(x)
    if self.kind == "group":
      return nn.GroupNorm(num_groups=_group_count(x.shape[-1]), epsilon=1e-5)(x)
    if self.kind == "none":
      return x
    raise ValueError(f"unknown norm '{self.kind}'; choose one of {', '.join(NORMS)}")

