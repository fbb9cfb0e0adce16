"""init='torchvision' (issue 10, docs/recipes_sources.md §12): the fresh ResNet-18 as torchvision's
constructor leaves it and DEL's Reset draws θ0 from it. Convolutions ~ N(0, 2 / fan_out) with
fan_out = k·k·out (kaiming_normal_, mode='fan_out', relu), BatchNorm scale 1 / bias 0, the
classifier torch.nn's Linear default U(±1/√fan_in) for weight and bias, and the stem, which
DEL-Unlearning replaces after construction, torch.nn's Conv2d default U(±1/√fan_in)."""

import jax
import numpy as np

from unlearn_jax.models import build_model, init_model


def test_torchvision_init_moments_of_resnet18():
  model = build_model("resnet18", 10, width=0.5, init="torchvision")
  params, _ = init_model(model, jax.random.PRNGKey(0), (8, 8, 3))
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
          for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  convs = 0
  for name, w in flat.items():
    if name.endswith("scale"):
      assert np.all(w == 1), name
    elif name.endswith("bias") and "norm" in name.lower():
      assert np.all(w == 0), name
    elif name.startswith("stem/") or name.startswith("classifier/"):
      fan_in = int(np.prod(flat[name.rsplit("/", 1)[0] + "/kernel"].shape[:-1]))
      bound = 1 / np.sqrt(fan_in)
      assert np.all(np.abs(w) <= bound) and w.std() > 0.5 * bound / np.sqrt(3), name
    elif name.endswith("kernel"):  # a block convolution, HWIO
      kh, kw, _, out = w.shape
      sd = np.sqrt(2.0 / (kh * kw * out))
      # sample sd within 5 standard errors (normal: sd of the sd ~ sd/sqrt(2n))
      assert abs(w.std() / sd - 1) < 5 / np.sqrt(2 * w.size), (name, w.std(), sd)
      assert abs(w.mean()) < 5 * sd / np.sqrt(w.size), name
      convs += 1
  assert convs == 19  # 16 block convs + 3 shortcuts (the stem is checked above)
  # with in = out channels, N(0, 2/fan_out) is √2 wider than Flax's LeCun N(0, 1/fan_in)
  flax_params, _ = init_model(build_model("resnet18", 10, width=0.5), jax.random.PRNGKey(0),
                              (8, 8, 3))
  a = np.asarray(params["stage0_block0"]["conv0"]["kernel"]).std()
  b = np.asarray(flax_params["stage0_block0"]["conv0"]["kernel"]).std()
  assert abs(a / b - np.sqrt(2)) < 0.05  # N(0, 2/fan_out) vs LeCun N(0, 1/fan_in), in = out
