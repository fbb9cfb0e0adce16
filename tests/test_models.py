import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unlearn_jax.models import MODELS, build_model, count_params, init_model

SHAPES = {"mlp": (8, 8, 1), "cnn": (8, 8, 1), "allcnn": (8, 8, 1), "resnet18": (8, 8, 1),
          "vit": (8, 8, 1)}
SMALL = {"mlp": 0.25, "cnn": 0.5, "allcnn": 0.1, "resnet18": 0.0625, "vit": 0.25}
EXTRA = {"vit": dict(patch_size=2, dim=32, depth=1, heads=2)}


# Every norm on the cheap models; one or two on the slow-to-compile ones.
CASES = [(m, n) for m in ("mlp", "cnn") for n in ("batch", "group", "none")] + [
    ("allcnn", "batch"), ("resnet18", "batch"), ("resnet18", "group"), ("vit", "batch")]


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
  has_bn = norm == "batch" and name != "vit"
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


@pytest.mark.parametrize("k", [0.125, 1.0])
def test_resnet18_size_by_hand(k):
  model = build_model("resnet18", 10, width=k)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))[0]
  assert count_params(params) == preact_resnet18_count(k)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nope"), "unknown model 'nope'"),
    (dict(name="cnn", width=0.0), "width multiplier must be > 0"),
    (dict(name="cnn", width=-1.0), "width multiplier must be > 0"),
    (dict(name="cnn", norm="layer"), "unknown norm 'layer'"),
    (dict(name="cnn", patch_size=4), "has no option"),
])
def test_bad_model_arguments(kwargs, match):
  name = kwargs.pop("name")
  with pytest.raises(ValueError, match=match):
    build_model(name, 10, **kwargs)


def test_vit_patch_must_divide_image():
  model = build_model("vit", 10, patch_size=3, dim=16, depth=1, heads=2)
  with pytest.raises(ValueError, match="not divisible by patch_size"):
    init_model(model, jax.random.PRNGKey(0), (8, 8, 1))
