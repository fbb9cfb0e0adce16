"""Your own method through the whole benchmark: `unlearn_jax.methods.register`, import paths in
the config argument, the contract's one-line errors, the main job and its report (recipe `user`),
`experiments.evaluate` in a fresh process, and `experiments.tune`. The user method is
tests/mymethods/shrink_finetune.py, the README's example verbatim."""

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mymethods.shrink_finetune as shrink
from experiments.configs import unlearn as unlearn_config
from unlearn_jax import io, methods
from unlearn_jax import train as T
from unlearn_jax.methods import MethodConfigError, MethodContractError, UnlearnData
from unlearn_jax.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SMALL = "dataset=digits,model=mlp,seeds=2,oracle_seeds=2,epochs=2"


@pytest.fixture(autouse=True)
def _clean_registry():
  yield
  for name in [n for n in methods.method_names() if methods.is_user_method(n)]:
    methods.unregister(name)


def _module(**members):
  base = dict(DEFAULTS=dict(lr=0.1), check_config=lambda cfg, data=None: None,
              unlearn=lambda *a, **k: None)
  return types.SimpleNamespace(**{**base, **members})


def test_register_fills_the_optional_members_and_is_idempotent():
  assert methods.register("shrink_finetune", shrink) == "shrink_finetune"
  assert methods.register("shrink_finetune", shrink) == "shrink_finetune"  # the same: a no-op
  m = methods.get_method("shrink_finetune")
  assert m.USES_FORGET is False and m.VECTORIZED == () and m.TUNE_SPACE == {}
  assert m.DEFAULTS == shrink.DEFAULTS and m.unlearn is shrink.unlearn
  assert methods.method_names()[-1] == "shrink_finetune" and methods.is_user_method(
      "shrink_finetune") and not methods.is_user_method("finetune")
  with pytest.raises(MethodConfigError, match="already registered as 'shrink_finetune'"):
    methods.register("shrink_finetune", _module())
  methods.unregister("shrink_finetune")
  with pytest.raises(ValueError, match="unknown unlearning method 'shrink_finetune'"):
    methods.get_method("shrink_finetune")


@pytest.mark.parametrize("obj,message", [
    (_module(DEFAULTS=None), "no DEFAULTS mapping"),
    (_module(DEFAULTS=[1, 2]), "DEFAULTS is a list, not a mapping"),
    (_module(DEFAULTS={"a-b": 1}), "not identifiers"),
    (_module(unlearn=None), "no callable unlearn"),
    (_module(check_config=3), "no callable check_config"),
    (_module(VECTORIZED=("momentum",)), "VECTORIZED names ['momentum'], not in DEFAULTS"),
    (_module(USES_FORGET="yes"), "USES_FORGET is 'yes'"),
    (_module(TUNE_SPACE={"momentum": (0.1,)}), "TUNE_SPACE must map"),
])
def test_contract_errors_name_what_is_missing(obj, message):
  with pytest.raises(MethodContractError) as e:
    methods.register("mine", obj)
  assert message in str(e.value) and "methods/base.py" in str(e.value)
  assert "\n" not in str(e.value) and "mine" not in methods.method_names()


@pytest.mark.parametrize("name,spec,message", [
    ("my-method", _module(), "not a valid name"),
    ("del", _module(), "not a valid name"),          # a Python keyword
    ("finetune", _module(), "a built-in method's"),
    (None, "mymethods.clash", "a built-in method's"),  # its NAME is "finetune"
    (None, "mymethods.broken", "no callable unlearn"),
    (None, "nosuchpkg.method", "cannot import user method 'nosuchpkg.method'"),
    (None, "mymethods.shrink_finetune:nothing", "has no attribute 'nothing'"),
])
def test_bad_registrations(name, spec, message):
  with pytest.raises(MethodConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
    methods.register(name, spec)


def test_import_path_in_the_config_argument():
  config = unlearn_config.get_config(f"{SMALL},methods=finetune+mymethods.shrink_finetune")
  assert config.methods == ("finetune", "shrink_finetune")
  assert config.user_methods.to_dict() == {"shrink_finetune": "mymethods.shrink_finetune"}
  assert config.method_configs.shrink_finetune.to_dict() == shrink.DEFAULTS
  assert config.tune.space.shrink_finetune.shrink is None  # a grid can be given for any field
  with pytest.raises(ValueError, match="give your own method's import path"):
    unlearn_config.get_config(f"{SMALL},methods=finetune+shrinkfinetune")


def test_the_registered_method_is_what_it_says(digits):
  """Through `run_method`, shrink_finetune equals the built-in finetune run on θ*·(1 − shrink)
  with the same hyperparameters and key (an independent reference for the whole path)."""
  methods.register("shrink_finetune", shrink)
  model = build_model("mlp", 10, width=0.125)
  x, y = jnp.asarray(digits.train.x[:160]), np.asarray(digits.train.y[:160])
  keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
  state = T.create_train_state(model, T.make_optimizer(learning_rate=0.1, total_steps=4), keys,
                               digits.image_shape)
  data = UnlearnData(retain_x=x[32:], retain_y=y[32:], forget_x=x[:32], forget_y=y[:32],
                     num_classes=10, model=model, image_shape=digits.image_shape,
                     model_axis="vmap")
  cfg = dict(epochs=1, batch_size=32, learning_rate=0.05)
  got = methods.run_method("shrink_finetune", state, data, {**cfg, "shrink": 0.5}, keys)
  shrunk = state.replace(params=jax.tree_util.tree_map(lambda p: 0.5 * p, state.params))
  want = methods.run_method("finetune", shrunk, data, {**cfg, "epochs": 1}, keys)
  for a, b in zip(jax.tree_util.tree_leaves(got.state.params),
                  jax.tree_util.tree_leaves(want.state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert got.cost["example_gradients"] == want.cost["example_gradients"] == 4 * 32


def readme_python_blocks() -> list[str]:
  """The ```python blocks of the README's "Your own method" section."""
  text = (ROOT / "README.md").read_text()
  section = text.split("## Your own method", 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_shows_the_tested_method_verbatim():
  blocks = readme_python_blocks()
  assert len(blocks) == 2
  assert blocks[0] == (ROOT / "tests" / "mymethods" / "shrink_finetune.py").read_text()
  assert len(blocks[0].splitlines()) <= 26


def _run(module, *args, cwd):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_user_method_through_the_main_job_report_and_evaluate(tmp_path):
  """The README's example, executed as written: register, then the main job's default config
  with the user method beside finetune; its row in report.md with metrics, cost and recipe
  `user`; the report recomputed by `experiments.evaluate` in a fresh process (which never
  imports the method)."""
  workdir = tmp_path / "wd"
  scope: dict = {}
  exec(readme_python_blocks()[1].replace('"DIR"', repr(str(workdir))), scope)  # noqa: S102
  summary = scope["summary"]
  assert [summary["groups"][m]["status"] for m in summary["methods"]] == ["ok", "ok"], summary
  report = (workdir / "report.md").read_text()
  row = next(l for l in report.splitlines() if l.startswith("| shrink_finetune | ok |"))
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert len(cells) >= 14 and all(c not in ("", "—", "nan") for c in cells[2:8]), row
  assert "| shrink_finetune | user |" in report and "| finetune | fast |" in report
  record = io.read_json(workdir / "methods" / "shrink_finetune" / "result.json")
  assert record["status"] == "done" and record["uses_forget"] is False
  assert record["config"]["shrink"] == 0.3 and record["cost"]["example_gradients"] > 0
  rc = _run("experiments.evaluate", f"--workdir={workdir}", cwd=tmp_path)
  assert rc.returncode == 0, rc.stderr[-2000:]
  assert "2/2 methods ok" in rc.stdout, rc.stdout
  assert row in (workdir / "report.md").read_text()


@pytest.mark.slow
def test_import_path_through_the_launchers(tmp_path):
  """`methods=...+mymethods.shrink_finetune` in a real launcher process: the tuner picks the
  user method's grid (TUNE_SPACE not given: one from the command line); a broken user method is
  the one-line error, exit 2, nothing written."""
  cfg = (f"--config={ROOT / 'experiments/configs/unlearn.py'}:{SMALL},"
         "methods=mymethods.shrink_finetune")
  bad = _run("experiments.unlearn", cfg.replace("shrink_finetune", "broken"),
             f"--workdir={tmp_path / 'bad'}", cwd=tmp_path)
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr[-2000:]
  assert "user method 'broken' does not meet the method contract: no callable unlearn" in (
      bad.stderr) and not (tmp_path / "bad").exists()
  wd = tmp_path / "tune"
  r = _run("experiments.tune", cfg, "--config.progress=False",
           "--config.tune.space.shrink_finetune.shrink=(0.0,0.5)", f"--workdir={wd}",
           cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  rows = io.read_jsonl(wd / "tuning" / "shrink_finetune.jsonl")
  assert sorted(r["config"]["shrink"] for r in rows) == [0.0, 0.5]
  best = io.read_json(wd / "tuning" / "shrink_finetune_best.json")
  assert best["num_candidates"] == 2 and best["best"]["config"]["shrink"] in (0.0, 0.5)
