import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax.models import MODELS, build_model, count_params, init_model

SHAPES = {"mlp": (8, 8, 1), "cnn": (8, 8, 1), "allcnn": (8, 8, 1), "resnet18": (8, 8, 1),
          "preact_resnet18": (8, 8, 1), "vit": (8, 8, 1), "resnet50": (8, 8, 1)}
SMALL = {"mlp": 0.25, "cnn": 0.5, "allcnn": 0.1, "resnet18": 0.0625, "preact_resnet18": 0.0625,
         "vit": 0.25, "resnet50": 0.0625}
EXTRA = {"vit": dict(patch_size=2, dim=32, depth=1, heads=2)}


# Every norm on the cheap models; one or two on the slow-to-compile ones.
CASES = [(m, n) for m in ("mlp", "cnn") for n in ("batch", "group", "none")] + [
    ("cnn", "batch_torch"), ("allcnn", "batch"), ("resnet18", "batch"), ("resnet18", "none"),
    ("preact_resnet18", "batch"), ("preact_resnet18", "group"), ("vit", "batch")]


def shapes_of(name, width):
  model = build_model(name, 10, width=width, **EXTRA.get(name, {}))
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *SHAPES[name])))[0]


@pytest.mark.parametrize("name, norm", CASES)
def test_forward_shapes_and_modes(name, norm):
  model = build_model(name, 7, width=SMALL[name], norm=norm, **EXTRA.get(name, {}))
  params, state = init_model(model, jax.random.PRNGKey(0), SHAPES[name])
  x = jax.random.normal(jax.random.PRNGKey(1), (5, *SHAPES[name]))
  logits, new_state = model.apply(params, state, x, True)
  assert logits.shape == (5, 7)
  assert np.all(np.isfinite(logits))
  eval_logits, same_state = model.apply(params, state, x, False)
  assert eval_logits.shape == (5, 7)
  assert jax.tree_util.tree_structure(same_state) == jax.tree_util.tree_structure(state)
  has_bn = norm in ("batch", "batch_torch") and name != "vit"
  assert ("batch_stats" in state) == has_bn
  if has_bn:  # training mode updates running statistics, inference mode does not
    changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), state, new_state)
    assert any(jax.tree_util.tree_leaves(changed))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(state),
                                                    jax.tree_util.tree_leaves(same_state)))
  assert "classifier" in params  # every model names its last layer 'classifier'


@pytest.mark.parametrize("name", MODELS)
def test_param_count_grows_with_width(name):
  counts = [count_params(shapes_of(name, width)) for width in (0.25, 0.5, 1.0)]
  assert counts[0] < counts[1] < counts[2]


def test_param_count_matches_by_hand():
  # MLP on 8x8x1 with hidden (64, 64), no norm: 64*64+64 + 64*64+64 + 64*10+10.
  model = build_model("mlp", 10, width=0.25, norm="none")
  params, _ = init_model(model, jax.random.PRNGKey(0), (8, 8, 1))
  assert count_params(params) == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10


def preact_resnet18_count(k=1.0, in_ch=3, classes=10):
  """Parameters of a pre-activation ResNet-18 counted from its architecture, by hand."""
  w = [round(64 * k), round(128 * k), round(256 * k), round(512 * k)]
  total, cin = 9 * in_ch * w[0], w[0]  # bias-free 3x3 stem
  for stage, cout in enumerate(w):
    for block in range(2):
      total += 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout  # norm0, conv0, norm1, conv1
      if cin != cout:
        total += cin * cout  # 1x1 projection shortcut
      cin = cout
  return total + 2 * cin + cin * classes + classes  # final norm, classifier


def resnet18_count(k=1.0, in_ch=3, classes=10):
  """Parameters of torchvision's post-activation ResNet-18 (3x3 stem), counted by hand."""
  w = [round(64 * k), round(128 * k), round(256 * k), round(512 * k)]
  total, cin = 9 * in_ch * w[0] + 2 * w[0], w[0]  # bias-free 3x3 stem and its norm
  for cout in w:
    for block in range(2):
      total += 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout  # conv0, norm0, conv1, norm1
      if cin != cout:
        total += cin * cout + 2 * cout  # 1x1 projection shortcut and its norm
      cin = cout
  return total + cin * classes + classes  # classifier


def cifar_size(name, k):
  model = build_model(name, 10, width=k)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))[0]
  return count_params(params)


@pytest.mark.parametrize("k", [0.125, 1.0])
def test_preact_resnet18_size_by_hand(k):
  assert cifar_size("preact_resnet18", k) == preact_resnet18_count(k)


@pytest.mark.parametrize("k", [0.125, 1.0])
def test_resnet18_size_by_hand(k):
  assert cifar_size("resnet18", k) == resnet18_count(k)


def test_resnet18_size_is_torchvisions():
  # torchvision.models.resnet18(num_classes=10) with conv1 = Conv2d(3, 64, 3, 1, 1, bias=False)
  # and no max-pool (DEL-Unlearning's ResNet18): 11,181,642 - 7*7*3*64 + 3*3*3*64.
  assert resnet18_count(1.0) == 11_181_642 - 9_408 + 1_728 == 11_173_962
  assert cifar_size("resnet18", 1.0) == 11_173_962


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nope"), "unknown model 'nope'"),
    (dict(name="cnn", width=0.0), "width multiplier must be > 0"),
    (dict(name="cnn", width=-1.0), "width multiplier must be > 0"),
    (dict(name="cnn", norm="layer"), "unknown norm 'layer'"),
    (dict(name="cnn", patch_size=4), "has no option"),
    (dict(name="resnet18", scale_stem=False), "has no option"),
    (dict(name="cnn", init="xavier"), "unknown init 'xavier'"),
])
def test_bad_model_arguments(kwargs, match):
  name = kwargs.pop("name")
  with pytest.raises(ValueError, match=match):
    build_model(name, 10, **kwargs)


def test_vit_patch_must_divide_image():
  model = build_model("vit", 10, patch_size=3, dim=16, depth=1, heads=2)
  with pytest.raises(ValueError, match="not divisible by patch_size"):
    init_model(model, jax.random.PRNGKey(0), (8, 8, 1))


TORCH_CASES = [("mlp", 1.0, {}), ("cnn", 1.0, dict(norm="none")), ("cnn", 1.0, {}),
               ("allcnn", 0.25, {}), ("resnet18", 0.25, {}), ("preact_resnet18", 0.25, {}),
               ("vit", 1.0, dict(patch_size=2, dim=64, depth=1, heads=4))]


def layers_of(params):
  """(path, module dict) of every module holding a 'kernel' or a norm 'scale'."""
  found = []

  def walk(tree, path):
    if "kernel" in tree or "scale" in tree:
      found.append(("/".join(path), tree))
    for k, v in tree.items():
      if isinstance(v, dict):
        walk(v, path + (k,))

  walk(jax.tree_util.tree_map(np.asarray, params), ())
  return found


def fan_in(path, kernel):
  """torch.nn's fan_in: in_channels * kh * kw of a HWIO conv, in_features of a dense [in, out];
  Flax attention's query/key/value kernels are [dim, heads, head_dim], so dim."""
  if path.rsplit("/", 1)[-1] in ("query", "key", "value"):
    return kernel.shape[0]
  return int(np.prod(kernel.shape[:-1]))


@pytest.mark.parametrize("name, width, kw", TORCH_CASES, ids=[f"{c[0]}-{c[2].get('norm', '')}"
                                                              for c in TORCH_CASES])
def test_torch_init_moments(name, width, kw):
  """init='torch': every conv/dense weight and bias ~ U(-b, b), b = 1/sqrt(fan_in) (torch.nn
  Conv2d/Linear reset_parameters), so |w| <= b, mean 0 and std b/sqrt(3); norms scale 1, bias 0."""
  model = build_model(name, 10, width=width, init="torch", **kw)
  params, _ = init_model(model, jax.random.PRNGKey(0), (8, 8, 3))
  checked = 0
  for path, layer in layers_of(params):
    if "scale" in layer:  # BatchNorm / GroupNorm / LayerNorm start as in torch.nn
      assert np.all(layer["scale"] == 1) and np.all(layer["bias"] == 0), path
      continue
    bound = 1 / np.sqrt(fan_in(path, layer["kernel"]))
    for leaf in ("kernel", "bias"):
      if leaf not in layer:
        continue
      w = layer[leaf].ravel()
      assert np.all(np.abs(w) <= bound), (path, leaf)
      assert np.count_nonzero(w) > 0.99 * w.size, (path, leaf)  # not Flax's zero biases
      if w.size >= 1000:  # moments within 5 standard errors (uniform: sd of the sd ~ 0.45/sqrt(n))
        sd = bound / np.sqrt(3)
        assert abs(w.mean()) < 5 * sd / np.sqrt(w.size), (path, leaf)
        assert abs(w.std() / sd - 1) < 5 * 0.45 / np.sqrt(w.size), (path, leaf)
        checked += 1
  assert checked >= 2


def test_torch_init_biases_present_where_torch_has_them():
  params, _ = init_model(build_model("cnn", 10, norm="none", init="torch"), jax.random.PRNGKey(0),
                         (8, 8, 1))
  assert all("bias" in params[f"conv{i}"] for i in range(3)) and "bias" in params["classifier"]
  params = shapes_of("resnet18", 0.25)  # bias-free convs stay bias-free
  assert "bias" not in params["stem"] and "bias" not in params["stage1_block0"]["shortcut"]


@pytest.mark.parametrize("name", MODELS)
def test_flax_init_is_the_default(name):
  def build(**init):
    model = build_model(name, 10, width=SMALL[name], **EXTRA.get(name, {}), **init)
    return init_model(model, jax.random.PRNGKey(0), SHAPES[name])

  a, b = build(), build(init="flax")
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                  jax.tree_util.tree_leaves(b)))


def resnet50_count(k=1.0, in_ch=3, classes=10):
  """Parameters of torchvision's ResNet-50 (Bottleneck v1.5) with the 3x3 CIFAR stem, by hand."""
  inner = [round(64 * k), round(128 * k), round(256 * k), round(512 * k)]
  stem = round(64 * k)
  total, cin = 9 * in_ch * stem + 2 * stem, stem  # bias-free 3x3 stem and its norm
  for p, blocks in zip(inner, (3, 4, 6, 3)):
    for b in range(blocks):
      total += cin * p + 2 * p + 9 * p * p + 2 * p + p * 4 * p + 2 * 4 * p  # 1x1, 3x3, 1x1 + norms
      if b == 0:  # the first block of every stage changes the shape: 1x1 projection and norm
        total += cin * 4 * p + 2 * 4 * p
      cin = 4 * p
  return total + cin * classes + classes  # classifier


@pytest.mark.parametrize("k", [0.125, 1.0])
def test_resnet50_size_by_hand(k):
  assert cifar_size("resnet50", k) == resnet50_count(k)


def test_resnet50_size_is_the_published_cifar10_count():
  # kuangliu/pytorch-cifar's ResNet50() (3x3 stem, no max-pool, 10 classes): 23,520,842
  # parameters, i.e. torchvision's resnet50(num_classes=10) 23,528,522 - 7*7*3*64 + 3*3*3*64.
  assert resnet50_count(1.0) == 23_528_522 - 9_408 + 1_728 == 23_520_842
  assert cifar_size("resnet50", 1.0) == 23_520_842


def test_resnet50_width_scales_every_stage():
  params = shapes_of("resnet50", 0.25)
  assert params["stem"]["kernel"].shape[-1] == 16
  for s, inner in enumerate((16, 32, 64, 128)):
    block = params[f"stage{s}_block0"]
    assert block["conv1"]["kernel"].shape[-1] == inner
    assert block["conv2"]["kernel"].shape[-1] == 4 * inner
    assert block["shortcut"]["kernel"].shape[-1] == 4 * inner
  assert params["classifier"]["kernel"].shape == (512, 10)



def test_batch_torch_keeps_pytorchs_running_variance():
  """`batch_torch`: normalises like `batch`, but the running variance moves toward the unbiased
  batch variance (torch.nn.BatchNorm2d), `batch` toward the biased one (Flax); same paths."""
  from unlearn_jax.models.layers import Norm
  x = jax.random.normal(jax.random.PRNGKey(3), (6, 4, 4, 3)) * 2.0 + 1.0
  xn = np.asarray(x, np.float64).reshape(-1, 3)
  out = {}
  for kind in ("batch", "batch_torch"):
    layer = Norm(kind)
    variables = layer.init(jax.random.PRNGKey(0), x, False)
    y, updates = layer.apply(variables, x, True, mutable=["batch_stats"])
    out[kind] = (variables, np.asarray(y), updates["batch_stats"]["BatchNorm_0"])
  (v_b, y_b, st_b), (v_t, y_t, st_t) = out["batch"], out["batch_torch"]
  assert jax.tree_util.tree_structure(v_b) == jax.tree_util.tree_structure(v_t)
  ref = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5)  # normalised by the biased variance
  np.testing.assert_allclose(y_b.reshape(-1, 3), ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(y_t.reshape(-1, 3), ref, rtol=1e-4, atol=1e-4)
  for st in (st_b, st_t):
    np.testing.assert_allclose(st["mean"], 0.1 * xn.mean(0), rtol=1e-5)
  np.testing.assert_allclose(st_b["var"], 0.9 + 0.1 * xn.var(0), rtol=1e-5)  # Flax: biased
  np.testing.assert_allclose(st_t["var"], 0.9 + 0.1 * xn.var(0, ddof=1), rtol=1e-5)  # PyTorch
  # inference mode uses the running statistics
  y_inf = np.asarray(Norm("batch_torch").apply({**v_t, "batch_stats": {"BatchNorm_0": st_t}},
                                               x, False))
  ref_inf = (xn - np.asarray(st_t["mean"])) / np.sqrt(np.asarray(st_t["var"]) + 1e-5)
  np.testing.assert_allclose(y_inf.reshape(-1, 3), ref_inf, rtol=1e-4, atol=1e-4)
  # a whole net: the same parameter paths with either kind
  a = init_model(build_model("cnn", 5, width=0.25, norm="batch"), jax.random.PRNGKey(0),
                 (8, 8, 1))
  b = init_model(build_model("cnn", 5, width=0.25, norm="batch_torch"), jax.random.PRNGKey(0),
                 (8, 8, 1))
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
