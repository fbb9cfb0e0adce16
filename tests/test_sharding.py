"""Data parallelism over 4 forced CPU devices equals one device within float tolerance.

XLA_FLAGS must be set before JAX starts, so the check runs in a fresh interpreter.
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


def test_sharded_equals_unsharded_on_4_cpu_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  assert out.stdout.strip().endswith("OK")
