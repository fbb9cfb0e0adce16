"""A small Vision Transformer (Dosovitskiy et al. 2021), as DEL uses on SVHN.

Patch embedding (conv with kernel = stride = patch size), a learned class token and position
embedding, `depth` pre-LN encoder blocks (multi-head self-attention, MLP with GELU), a final
LayerNorm and a dense classifier on the class token. Transformers always use LayerNorm: the
`norm` option of the other models does not apply. `width` scales `dim` (rounded to a multiple of
`heads`) and the MLP width. `init='torch'` starts the patch embedding, attention projections, MLP
and classifier as torch.nn Conv2d/Linear do (`layers.torch_uniform`; every attention projection
has fan_in = dim); the class token (zeros), position embedding (normal, std 0.02) and LayerNorms
(scale 1, bias 0) keep their initialization under both inits.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from unlearn_jax.models.layers import conv, dense, initializers, scaled


class EncoderBlock(nn.Module):
  dim: int
  heads: int
  mlp_dim: int
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x):
    y = nn.LayerNorm(name="ln0")(x)
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads, name="attention",
                                            **initializers(self.param_init, self.dim))(y, y)
    y = nn.LayerNorm(name="ln1")(x)
    y = dense(y, self.mlp_dim, init=self.param_init, name="mlp0")
    y = dense(nn.gelu(y), self.dim, init=self.param_init, name="mlp1")
    return x + y


class ViT(nn.Module):
  num_classes: int
  width: float = 1.0
  patch_size: int = 4
  dim: int = 128
  depth: int = 4
  heads: int = 4
  mlp_ratio: float = 2.0
  param_init: str = "flax"

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout, no batch statistics
    heads = self.heads
    dim = max(heads, heads * round(scaled(self.dim, self.width) / heads))
    p = self.patch_size
    if x.shape[1] % p or x.shape[2] % p:
      raise ValueError(f"model 'vit': image size {x.shape[1:3]} is not divisible by patch_size "
                       f"{p}; set --config.model.patch_size to a divisor")
    x = conv(x, dim, p, stride=p, padding="VALID", init=self.param_init, name="patch_embed")
    x = x.reshape((x.shape[0], -1, dim))
    cls = self.param("cls_token", nn.initializers.zeros, (1, 1, dim))
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, dim)), x], axis=1)
    x = x + self.param("pos_embed", nn.initializers.normal(0.02), (1, x.shape[1], dim))
    for i in range(self.depth):
      x = EncoderBlock(dim, heads, max(1, int(dim * self.mlp_ratio)), self.param_init,
                       name=f"block{i}")(x)
    x = nn.LayerNorm(name="final_ln")(x[:, 0])
    return dense(x, self.num_classes, init=self.param_init, name="classifier")
