"""The launchers' process setup: the persistent compilation cache (unlearn_jax/runtime.py)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from experiments.configs import unlearn as unlearn_config
from unlearn_jax import runtime

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    from unlearn_jax import runtime
    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    runtime.configure_from_config({"deterministic": True, "matmul_precision": "highest",
                                   "compilation_cache": sys.argv[1]})
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
    print(float(f(jnp.arange(12.0).reshape(3, 4) / 10)))
    print(events.count("/jax/compilation_cache/cache_hits"))
""")


def run(cache_dir):
  env = {k: v for k, v in os.environ.items() if k != runtime.ENV_DIR}
  out = subprocess.run([sys.executable, "-c", PROGRAM, str(cache_dir)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  value, hits = out.stdout.split()
  return value, int(hits)


def test_compilation_cache_is_written_and_reused(tmp_path):
  cache = tmp_path / "xla"
  first, hits = run(cache)
  entries = sorted(p.name for p in cache.iterdir())
  assert entries and hits == 0, "nothing was cached, or a fresh cache had hits"
  second, hits = run(cache)  # the programs now come from the cache: same value, no new entry
  assert second == first and hits >= 1
  assert sorted(p.name for p in cache.iterdir()) == entries


def test_empty_setting_disables_the_cache(tmp_path):
  assert runtime.enable_compilation_cache("") is None
  assert runtime.enable_compilation_cache(None) is None


def test_config_default_follows_the_environment(monkeypatch):
  monkeypatch.setenv(runtime.ENV_DIR, "/some/where")
  assert unlearn_config.get_config("dataset=digits").compilation_cache == "/some/where"
  monkeypatch.delenv(runtime.ENV_DIR)
  assert runtime.default_cache_dir().endswith(os.path.join(".cache", "unlearn-jax", "xla"))


def test_distributed_initializes_only_when_asked(monkeypatch):
  import jax

  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
  base = {"deterministic": True, "matmul_precision": "highest", "compilation_cache": ""}
  runtime.configure_from_config({**base, "distributed": False})
  runtime.configure_from_config(base)  # configs without the field: as False
  assert calls == []
  monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
  monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
  runtime.configure_from_config({**base, "distributed": True})  # a cluster manager: detected
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "1")
  runtime.configure_from_config({**base, "distributed": True})  # by hand
  assert calls == [((), {}), ((), {"num_processes": 2, "process_id": 1})]
  assert unlearn_config.get_config("dataset=digits").distributed is False
