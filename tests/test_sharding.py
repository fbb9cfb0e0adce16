"""Data parallelism and models split over 4 forced CPU devices equal one device within float
tolerance.

XLA_FLAGS must be set before JAX starts, so each check runs in a fresh interpreter.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    assert jax.local_device_count() == 4, jax.devices()
    from unlearn_jax import train as T
    from unlearn_jax.data import load_dataset
    from unlearn_jax.models import build_model
    d = load_dataset("digits")
    x, y = d.train.x[:512], d.train.y[:512]
    model = build_model("cnn", 10, width=0.25)
    tx = T.make_optimizer(learning_rate=0.05, total_steps=16, weight_decay=5e-4)
    mesh = T.data_parallel_mesh()
    assert mesh.size == 4
    def diff(a, b):
        return max(float(jnp.max(jnp.abs(u - v))) for u, v in
                   zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    for keys in (jax.random.PRNGKey(0), jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])):
        init = T.create_train_state(model, tx, keys, x.shape[1:])
        dkey = jax.vmap(lambda k: jax.random.fold_in(k, 7))(keys) if keys.ndim == 2 else \\
            jax.random.fold_in(keys, 7)
        one = T.fit(init, x, y, key=dkey, epochs=2, batch_size=64)
        init = T.create_train_state(model, tx, keys, x.shape[1:])
        many = T.fit(init, x, y, key=dkey, epochs=2, batch_size=64, mesh=mesh)
        leaf = jax.tree_util.tree_leaves(many.params)[0]
        assert len(leaf.sharding.device_set) == 4, leaf.sharding
        d_params, d_stats = diff(one.params, many.params), diff(one.model_state, many.model_state)
        print("stacked" if keys.ndim == 2 else "single", d_params, d_stats)
        assert d_params < 1e-5 and d_stats < 1e-5, (d_params, d_stats)
        assert diff(T.evaluate(one, x, y), T.evaluate(many, x, y)) < 1e-5
    try:
        T.fit(init, x, y, key=dkey, epochs=1, batch_size=66, mesh=mesh)
        raise SystemExit("expected an error for a batch not divisible by 4 devices")
    except ValueError as e:
        assert "not divisible by the 4 devices" in str(e)
    print("OK")
""")


# Seeds split over the devices: fit, evaluate, checkpoints, resume, and the pipeline's config.
MODELS_SCRIPT = textwrap.dedent("""
    import dataclasses, tempfile
    from pathlib import Path
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from experiments.configs import train as train_config
    from unlearn_jax import io, train as T
    from unlearn_jax.checkpoint import Checkpointer
    from unlearn_jax.data import load_dataset
    from unlearn_jax.errors import ConfigError
    from unlearn_jax.models import build_model
    from unlearn_jax.pipelines import experiment, reference, validate
    tmp = Path(tempfile.mkdtemp())
    d = load_dataset("digits")
    x, y = d.train.x[:512], d.train.y[:512]
    model = build_model("cnn", 10, width=0.25)
    tx = T.make_optimizer(learning_rate=0.05, total_steps=16, weight_decay=5e-4)
    mesh = T.model_parallel_mesh()
    assert mesh.size == 4 and mesh.axis_names == ("model",)
    def diff(a, b):
        return max(float(jnp.max(jnp.abs(u - v))) for u, v in
                   zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    def first(tree, n):
        return jax.tree_util.tree_map(lambda a: a[:n], tree)
    def split_over_4(state):
        for leaf in jax.tree_util.tree_leaves(state):
            assert leaf.sharding.spec[:1] == ("model",), leaf.sharding
            assert len(leaf.sharding.device_set) == 4, leaf.sharding
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(8)])
    dkeys = jax.vmap(lambda k: jax.random.fold_in(k, 7))(keys)
    init = T.create_train_state(model, tx, keys, x.shape[1:])
    kw = dict(key=dkeys, epochs=2, batch_size=64)
    one = T.fit(init, x, y, **kw, model_axis="vmap")  # the 8 seeds on one device
    # 8 seeds: 2 per device, unrolled inside each; 4 seeds: 1 per device, vmapped.
    for n, axis in ((8, "unrolled"), (4, "vmap")):
        many = T.fit(first(init, n), x, y, **{**kw, "key": dkeys[:n]}, mesh=mesh,
                     model_axis=axis)
        split_over_4(many)
        ref = first(one, n)
        d_params, d_stats = diff(ref.params, many.params), diff(ref.model_state, many.model_state)
        print(n, "seeds over 4 devices", d_params, d_stats)
        assert d_params < 1e-5 and d_stats < 1e-5, (d_params, d_stats)
        assert T.model_mesh_of(many) is not None and T.model_mesh_of(ref) is None
        if n == 8:
            assert diff(T.evaluate(ref, x, y), T.evaluate(many, x, y, model_axis=axis)) < 1e-5
    # Per-model training subsets (shadow models) with the seeds split: each device's models
    # take their own rows, the same models as on one device.
    sub = np.stack([np.sort(np.random.default_rng(s).choice(512, 256, replace=False))
                    for s in range(8)]).astype(np.int32)
    one_sub = T.fit(init, x, y, **kw, model_axis="vmap", subsets=sub)
    many_sub = T.fit(init, x, y, **kw, mesh=mesh, model_axis="unrolled", subsets=sub)
    split_over_4(many_sub)
    d_sub = diff(one_sub.params, many_sub.params)
    print("subsets over 4 devices", d_sub)
    assert d_sub < 1e-5 and diff(one_sub.params, one.params) > 1e-3, d_sub
    # Replicated on a data mesh (where the unlearning methods run): the same models.
    assert diff(T.replicate(many, T.data_parallel_mesh()).params, many.params) == 0
    for bad, msg in ((first(init, 6), "6 models are not divisible by the 4 devices"),
                     (T.unstack(init, 0), "needs a stacked state")):
        try:
            T.fit(bad, x, y, key=dkeys[0], epochs=1, batch_size=64, mesh=mesh)
            raise SystemExit("expected an error for " + msg)
        except ValueError as e:
            assert msg in str(e), e
    # Checkpoint round trip of a split state: restored into the same shardings.
    with Checkpointer(tmp / "ckpt") as ckpt:
        ckpt.save(2, many)
        ckpt.wait()
        back = ckpt.restore(2, many)
    split_over_4(back)
    assert diff(back, many) == 0
    # train_group checkpoints every epoch; killed after epoch 1, it resumes to the same models.
    run = dict(x=x, y=y, key=dkeys[:4], batch_size=64, run_dir=tmp / "run", mesh=mesh,
               model_axis="vmap", progress=False)
    reference.train_group(first(init, 4), epochs=1, **run)
    resumed = reference.train_group(first(init, 4), epochs=2, **run)
    split_over_4(resumed)
    assert diff(resumed.params, first(one, 4).params) < 1e-5
    # The pipeline: parallelism=models splits the seeds, same numbers as one device.
    def config(parallelism, seeds=8, oracle_seeds=8):
        c = train_config.get_config(f"dataset=digits,seeds={seeds},oracle_seeds={oracle_seeds},"
                                    "epochs=1")
        c.model.width, c.train.model_axis, c.progress = 0.25, "vmap", False
        c.data.max_train_examples, c.train.parallelism = 512, parallelism
        return c
    # Seeds that cannot split over the devices: one line naming the field, before any write.
    for seeds, oracle, field in ((3, 4, "config.seeds has 3 seeds"),
                                 (4, 6, "config.oracle_seeds has 6 seeds")):
        try:
            experiment.setup(config("models", seeds, oracle), tmp / "bad")
            raise SystemExit("expected a ConfigError for " + field)
        except ConfigError as e:
            assert str(e).startswith(field) and "4 devices" in str(e), e
        assert not (tmp / "bad").exists()
    validate.plan(config("data", 3, 6))  # only parallelism=models needs divisible seeds
    assert experiment.mesh_for(config("models")).axis_names == ("model",)
    assert experiment.method_mesh_for(config("models")).axis_names == ("data",)
    assert experiment.mesh_for(config("none")) is None
    assert experiment.method_mesh_for(config("none")) is None
    states, logs = {}, {}
    for p in ("models", "none"):
        exp = experiment.setup(config(p), tmp / p)
        exp = dataclasses.replace(exp, model=model)  # the same architecture, compiled once
        states[p], _ = reference.train_reference(exp, "original")
        logs[p] = io.read_jsonl(exp.layout.group("original") / "metrics.jsonl")
    split_over_4(states["models"])
    assert diff(states["models"].params, states["none"].params) < 1e-5
    (a,), (b,) = logs["models"], logs["none"]
    gap = max(abs(u - v) for k in a if k.startswith(("train_", "validation_"))
              for u, v in zip(a[k], b[k]))
    print("pipeline models vs none", gap)
    assert gap < 1e-5, (a, b)
    print("OK")
""")


def run_on_4_cpu_devices(script: str) -> str:
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  assert out.stdout.strip().endswith("OK")
  return out.stdout


def test_sharded_equals_unsharded_on_4_cpu_devices():
  run_on_4_cpu_devices(SCRIPT)


def test_seeds_split_over_4_cpu_devices_equal_one_device():
  run_on_4_cpu_devices(MODELS_SCRIPT)
