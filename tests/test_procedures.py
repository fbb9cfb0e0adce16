"""The official procedures offered as method options (issue 10, `45-recipes.md`): each test shows
the procedure itself (pass order, label draws, schedule, batches per epoch), not only numbers.

A small BatchNorm MLP on sklearn digits keeps every run to a few compiled steps.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from unlearn_jax import masking
from unlearn_jax.methods import UnlearnData, base, common, l1_sparse, neggrad_plus
from unlearn_jax.methods import method_defaults, run_method
from unlearn_jax.models import build_model
from unlearn_jax.train import create_train_state, cross_entropy, fit, make_optimizer


@pytest.fixture(scope="module")
def setup(digits):
  model = build_model("mlp", 10, width=0.25)
  x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
  n = len(y)
  forget = np.arange(0, n, 10)[:96]
  keep = np.setdiff1d(np.arange(n), forget)
  data = UnlearnData(retain_x=x[keep], retain_y=y[keep], forget_x=x[forget], forget_y=y[forget],
                     num_classes=10, model=model, image_shape=digits.image_shape)
  tx = make_optimizer(learning_rate=0.1, total_steps=100, weight_decay=0.0)
  st = create_train_state(model, tx, jax.random.PRNGKey(0), digits.image_shape)
  st = fit(st, x, y, key=jax.random.PRNGKey(1), epochs=2, batch_size=64)
  return dict(data=data, state=st)


def record_epochs(monkeypatch):
  """Wrap `common.run_epoch`: record (which set, labels, batch size) of every pass."""
  calls = []
  real = common.run_epoch

  def spy(state, shared, own=None, **kw):
    labels = (own or {}).get("y", shared.get("y"))
    calls.append({"n": int(shared["x"].shape[0]), "y": np.asarray(labels),
                  "epoch": kw["epoch"], "batch_size": kw["batch_size"]})
    return real(state, shared, own, **kw)

  monkeypatch.setattr(common, "run_epoch", spy)
  return calls


def test_salun_rl_forget_pass_then_retain_pass_with_labels_redrawn(setup, monkeypatch):
  data, state = setup["data"], setup["state"]
  calls = record_epochs(monkeypatch)
  cfg = {**method_defaults("random_label"), "procedure": "forget_then_retain",
         "allow_true_label": True, "epochs": 3, "batch_size": 32, "schedule": "constant"}
  res = run_method("random_label", state, data, cfg, jax.random.PRNGKey(5))
  n_f, n_r = len(data.forget_y), len(data.retain_y)
  # per epoch: one pass over D_f, then one over D_r (6 passes in this order)
  assert [(c["n"], c["epoch"]) for c in calls] == [(n_f, e) if i % 2 == 0 else (n_r, e)
                                                   for e in range(3) for i in (0, 1)]
  true_f, true_r = np.asarray(data.forget_y), np.asarray(data.retain_y)
  forget_labels = [c["y"] for c in calls[0::2]]
  for c in calls[1::2]:
    assert np.array_equal(c["y"], true_r)  # the retain pass keeps the true labels
  # labels are redrawn for every pass (i.i.d. per example and epoch) over *all* classes: the true
  # class occurs (about 1/10 of the time) and the draws differ between epochs
  same_as_true = np.mean([np.mean(f == true_f) for f in forget_labels])
  assert 0.02 < same_as_true < 0.25, same_as_true
  assert not np.array_equal(forget_labels[0], forget_labels[1])
  assert not np.array_equal(forget_labels[1], forget_labels[2])
  # the steps: ⌊96/32⌋ forget + ⌊|D_r|/32⌋ retain per epoch
  assert res.cost["example_gradients"] == 3 * (3 * 32 + (n_r // 32) * 32)


def test_union_procedure_draws_once_and_never_the_true_label_by_default(setup, monkeypatch):
  data, state = setup["data"], setup["state"]
  calls = record_epochs(monkeypatch)
  cfg = {**method_defaults("random_label"), "epochs": 2}
  run_method("random_label", state, data, cfg, jax.random.PRNGKey(5))
  n = len(data.forget_y) + len(data.retain_y)
  assert [c["n"] for c in calls] == [n, n]  # one shuffled pass over the union per epoch
  fy = calls[0]["y"][-len(data.forget_y):]
  assert not np.any(fy == np.asarray(data.forget_y))
  assert np.array_equal(calls[0]["y"], calls[1]["y"])  # drawn once


def test_salun_decay_unmasked_shrinks_masked_out_parameters_by_weight_decay(setup):
  data, state = setup["data"], setup["state"]
  rng = np.random.default_rng(0)
  mask = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.random(p.shape) < 0.5), state.params)
  frozen = jax.tree_util.tree_map(lambda m: ~np.asarray(m), mask)
  cfg = {**method_defaults("random_label"), "epochs": 1, "batch_size": 64, "momentum": 0.0,
         "weight_decay": 0.01, "learning_rate": 0.05, "schedule": "constant"}
  n_steps = (len(data.forget_y) + len(data.retain_y)) // 64
  kept = run_method("random_label", state, data, cfg, jax.random.PRNGKey(2), mask=mask).state
  decayed = run_method("random_label", state, data, {**cfg, "decay_unmasked": True},
                       jax.random.PRNGKey(2), mask=mask).state
  for p0, pk, pd, f in zip(*(jax.tree_util.tree_leaves(t) for t in
                             (state.params, kept.params, decayed.params, frozen))):
    p0, pk, pd, f = map(np.asarray, (p0, pk, pd, f))
    assert np.array_equal(pk[f], p0[f])  # the fixed behaviour: bit-identical
    # PyTorch SGD on a zeroed gradient: θ ← θ − lr·wd·θ per step (no momentum here)
    np.testing.assert_allclose(pd[f], p0[f] * (1 - 0.05 * 0.01) ** n_steps, rtol=1e-5)


def test_l1_penalty_is_constant_within_an_epoch(setup, monkeypatch):
  gamma, steps, epochs = 1e-3, 7, 4
  coef = [float(l1_sparse.l1_coefficient(gamma, jnp.asarray(t), steps * epochs, steps))
          for t in range(steps * epochs)]
  for e in range(epochs):
    assert coef[e * steps:(e + 1) * steps] == pytest.approx([gamma * (1 - e / epochs)] * steps)
  per_step = [float(l1_sparse.l1_coefficient(gamma, jnp.asarray(t), steps * epochs))
              for t in range(steps * epochs)]
  assert len(set(per_step)) == steps * epochs  # the default decays every step
  # and the method passes its steps per epoch when penalty_decay="epoch"
  seen = []
  real = l1_sparse.l1_step
  monkeypatch.setattr(l1_sparse, "l1_step", lambda *a: seen.append(a) or real(*a))
  data, state = setup["data"], setup["state"]
  cfg = {**method_defaults("l1_sparse"), "epochs": 2, "penalty_decay": "epoch"}
  run_method("l1_sparse", state, data, cfg, jax.random.PRNGKey(0))
  r_steps = len(data.retain_y) // cfg["batch_size"]
  assert seen == [(cfg["gamma"], 2 * r_steps, r_steps)]


def record_paired_steps(monkeypatch):
  """Wrap the compiled paired step: record (retain batch i, forget batch j, forget permutation)."""
  calls = []
  real = neggrad_plus._compiled_paired_step

  def factory(*a, **kw):
    fn = real(*a, **kw)

    def run(state, rx, ry, fx, fy, rperm, fperm, i, j, *rest):
      calls.append((i, j, np.asarray(fperm)))
      return fn(state, rx, ry, fx, fy, rperm, fperm, i, j, *rest)

    return run

  monkeypatch.setattr(neggrad_plus, "_compiled_paired_step", factory)
  return calls


def test_del_ga_runs_retain_many_cycled_forget_batches_per_epoch(setup, monkeypatch):
  data, state = setup["data"], setup["state"]
  calls = record_paired_steps(monkeypatch)
  cfg = {**method_defaults("ga"), "epoch_length": "retain", "batch_size": 32,
         "retain_batch_size": 128, "epochs": 2, "learning_rate": 1e-3}
  res = run_method("ga", state, data, cfg, jax.random.PRNGKey(3))
  n_r, f_steps = len(data.retain_y), len(data.forget_y) // 32
  steps = n_r // 128
  assert res.info["steps_per_epoch"] == steps and len(calls) == 2 * steps
  for e in range(2):
    epoch = calls[e * steps:(e + 1) * steps]
    assert [j for _, j, _ in epoch] == [i % f_steps for i in range(steps)]  # cycled batches
    assert all(np.array_equal(p, epoch[0][2]) for _, _, p in epoch)  # one permutation replayed
  assert not np.array_equal(calls[0][2], calls[steps][2])  # a new one each epoch
  # the default GA: one pass over D_f per epoch
  plain = run_method("ga", state, data, {**cfg, "epoch_length": "forget"}, jax.random.PRNGKey(3))
  assert plain.cost["example_gradients"] == 2 * f_steps * 32


def test_neggrad_plus_reshuffles_forget_batches_by_default(setup, monkeypatch):
  data, state = setup["data"], setup["state"]
  calls = record_paired_steps(monkeypatch)
  cfg = {**method_defaults("neggrad_plus"), "epochs": 1, "batch_size": 64,
         "forget_batch_size": 32}
  run_method("neggrad_plus", state, data, cfg, jax.random.PRNGKey(3))
  f_steps = len(data.forget_y) // 32
  perms = [p for _, _, p in calls]
  assert not np.array_equal(perms[0], perms[f_steps])  # a new permutation per pass over D_f


def test_scrub_neggrad_loss_has_the_l2_term_and_eval_mode_keeps_statistics(setup):
  data, state = setup["data"], setup["state"]
  tx = optax.sgd(0.0)
  st = base.with_optimizer(state, tx)
  anchor = st.params
  moved = jax.tree_util.tree_map(lambda p: p + 0.01, st.params)
  st = st.replace(params=moved)
  br = {"x": jnp.asarray(data.retain_x[:16]), "y": jnp.asarray(data.retain_y[:16])}
  bf = {"x": jnp.asarray(data.forget_x[:8]), "y": jnp.asarray(data.forget_y[:8])}
  alpha, l2 = 0.95, 0.1
  new, m = neggrad_plus.paired_step(st, br, bf, alpha, l2, anchor, train_mode=False)
  logits = lambda b: st.apply_fn(moved, st.model_state, b["x"], False)[0]
  sq = sum(float(jnp.sum((p - a) ** 2)) for p, a in
           zip(jax.tree_util.tree_leaves(moved), jax.tree_util.tree_leaves(anchor)))
  want_r = float(cross_entropy(logits(br), br["y"])) + 0.5 * l2 * sq
  want = alpha * want_r - (1 - alpha) * float(cross_entropy(logits(bf), bf["y"]))
  assert float(m["retain_loss"]) == pytest.approx(want_r, rel=1e-5)
  assert float(m["loss"]) == pytest.approx(want, rel=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(new.model_state),
                  jax.tree_util.tree_leaves(st.model_state)):
    assert np.array_equal(np.asarray(a), np.asarray(b))  # eval mode: BatchNorm untouched
  # the method form runs end to end with its official switches
  cfg = {**method_defaults("neggrad"), "form": "weighted", "alpha": 0.95, "l2": 0.1,
         "train_mode": False, "epochs": 1, "momentum": 0.0}
  res = run_method("neggrad", state, data, cfg, jax.random.PRNGKey(0))
  assert res.info["steps_per_epoch"] == len(data.retain_y) // cfg["retain_batch_size"]


def sgd_lrs(tx, steps):
  """The learning rate of each step: −update of a unit gradient (momentum 0, wd 0)."""
  params = jnp.zeros(())
  opt = tx.init(params)
  out = []
  for _ in range(steps):
    u, opt = tx.update(jnp.ones(()), opt, params)
    out.append(-float(u))
  return out


def test_cosine_epoch_is_pytorch_cosine_annealing_stepped_per_epoch():
  lr, f, epochs, per = 0.1, 0.01, 5, 3
  tx = make_optimizer(learning_rate=lr, total_steps=epochs * per, momentum=0.0,
                      schedule="cosine_epoch", final_lr_fraction=f, epoch_steps=per)
  got = sgd_lrs(tx, epochs * per)
  want = [f * lr + (lr - f * lr) * (1 + math.cos(math.pi * (t // per) / epochs)) / 2
          for t in range(epochs * per)]
  assert got == pytest.approx(want, rel=1e-6)


def test_scrub_step_decay_follows_the_reference_epoch_rule(setup, monkeypatch):
  seen = []
  real = base.optimizer
  monkeypatch.setattr(base, "optimizer",
                      lambda cfg, total, mask=None, **kw: seen.append(kw) or real(cfg, total,
                                                                                  mask, **kw))
  data, state = setup["data"], setup["state"]
  cfg = {**method_defaults("scrub"), "epochs": 5, "max_steps": 2, "lr_decay_epochs": "3,5,9",
         "forget_batch_size": 32, "retain_batch_size": 256}
  run_method("scrub", state, data, cfg, jax.random.PRNGKey(0))
  f, r = len(data.forget_y) // 32, len(data.retain_y) // 256
  # 1-based epoch E decays when E > 3: 0-based epochs 3 and 4, i.e. from the start of epoch 3
  assert seen[-1]["decay_boundaries"] == (2 * f + 3 * r,)
  run_method("scrub", state, data, {**cfg, "epochs": 3}, jax.random.PRNGKey(0))
  assert seen[-1]["decay_boundaries"] == ()  # the official 3 epochs: the decay never fires
  tx = make_optimizer(learning_rate=1.0, total_steps=10, momentum=0.0, schedule="constant",
                      decay_boundaries=(4, 7), decay_rate=0.1)
  assert sgd_lrs(tx, 10) == pytest.approx([1.0] * 4 + [0.1] * 3 + [0.01] * 3)


def test_masked_gradients_with_zero_weight_decay_equal_masked_updates(setup):
  """decay_unmasked changes nothing without weight decay (momentum of a zero gradient is 0)."""
  data, state = setup["data"], setup["state"]
  mask = masking.full_mask(state.params, True)
  cfg = {**method_defaults("random_label"), "epochs": 1, "weight_decay": 0.0}
  a = run_method("random_label", state, data, cfg, jax.random.PRNGKey(1), mask=mask).state
  b = run_method("random_label", state, data, {**cfg, "decay_unmasked": True},
                 jax.random.PRNGKey(1), mask=mask).state
  for u, v in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6, atol=1e-7)
