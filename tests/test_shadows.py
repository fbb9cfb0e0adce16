"""Shadow models end to end (`unlearn_jax/pipelines/shadows.py`): memorisation scores and
U-LiRA on the quick configs, checked against independent recomputations from the saved files."""

import json

import numpy as np
import pytest

from experiments.configs import memorization as memorization_config
from experiments.configs import unlearn as unlearn_config
from unlearn_jax.data import forget as forget_lib
from unlearn_jax.metrics import logit_scaled_confidence, ulira
from unlearn_jax.pipelines import shadows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def memo(tmp_path_factory):
  config = memorization_config.get_config("quick")
  config.progress = False
  workdir = tmp_path_factory.mktemp("memo")
  return config, workdir, shadows.run_memorization(config, workdir)


def test_memorization_scores_equal_a_direct_computation(memo):
  config, workdir, summary = memo
  design = np.load(workdir / "shadows" / "design.npz")
  keep, subsets = design["keep"], design["subsets"]
  assert keep.shape == (8, summary["examples"]) and (keep.sum(0) == 4).sum() >= keep.shape[1] - 4
  logits = np.load(workdir / "shadows" / "logits" / "shadow_original.npz")["train"]
  labels = forget_lib.load_memorization_scores(workdir / "memorization.npz",
                                               keep.shape[1]).score
  from unlearn_jax.data import load_dataset
  y = np.asarray(load_dataset("digits").train.y)
  for j in (0, 5, 17, 300):  # the definition, example by example
    right = np.argmax(logits[:, j], -1) == y[j]
    expect = right[keep[:, j]].mean() - right[~keep[:, j]].mean()
    assert labels[j] == pytest.approx(expect)
  epochs = sorted((workdir / "shadows" / "proxy").glob("*.npz"))
  assert len(epochs) == config.train.epochs == summary["proxy_epochs"]
  for k in range(8):
    assert set(np.flatnonzero(keep[k])) == set(subsets[k].tolist())
  # rerun: everything reused, same scores
  again = shadows.run_memorization(config, workdir)
  assert again["mean_score"] == summary["mean_score"]
  assert again["wall_s"] < summary["wall_s"]


def test_memorization_forget_set_from_the_scores_file(memo):
  _, workdir, summary = memo
  scores = forget_lib.load_memorization_scores(workdir / "memorization.npz", summary["examples"],
                                               dataset="digits")
  high = forget_lib.memorization(scores.score, level="high", count=20, seed=0)
  low = forget_lib.memorization(scores.score, level="low", count=20, seed=0)
  assert np.nanmin(scores.score[high]) >= np.nanmax(scores.score[low])


def test_shadow_config_checks():
  config = unlearn_config.get_config("shadows=8")
  shadows.check_config(config, 4000)
  config.shadows.forget_size = 400
  with pytest.raises(Exception, match="forget_size"):
    shadows.check_config(config, 4000)
  config.shadows.forget_size, config.shadows.num = 100, 7
  with pytest.raises(Exception, match="even"):
    shadows.check_config(config, 4000)


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
  """`experiments.unlearn` with `shadows=8` (the shadow stage runs after the methods)."""
  from unlearn_jax.pipelines import unlearn as unlearn_lib
  config = unlearn_config.get_config("dataset=digits,epochs=3,seeds=2,oracle_seeds=2,shadows=8,"
                                     "methods=finetune")
  config.model.width = 0.25
  config.progress = False
  config.eval.plots = False
  config.shadows.update(pool=200, forget_size=40, targets=2)
  workdir = tmp_path_factory.mktemp("main_shadows")
  return config, workdir, unlearn_lib.run_unlearn(config, workdir)


def test_main_job_with_shadows_reports_ulira_and_evaluate_recomputes_it(main_job):
  """The report and results.csv carry U-LiRA / shadow KLOM per method, and
  `experiments.evaluate` gives the same numbers from the saved files."""
  import csv
  from unlearn_jax.pipelines import report as report_lib
  config, tmp_path, summary = main_job
  assert summary["groups"]["finetune"]["ulira_accuracy"] == pytest.approx(json.loads(
      (tmp_path / "results.json").read_text())["shadows"]["ulira"]["finetune"]["accuracy"]["mean"])
  text = (tmp_path / "report.md").read_text()
  assert "## Shadow models: U-LiRA and KLOM" in text and "| retrain (control) |" in text
  assert "| U-LiRA accuracy (shadow models) |" in text  # benchmark power shows it too
  rows = {r["group"]: r for r in csv.DictReader(open(tmp_path / "results.csv"))}
  assert rows["oracle"]["ulira_accuracy_mean"] and rows["finetune"]["shadow_klom_forget_p95"]
  again = report_lib.evaluate_workdir(tmp_path)
  assert again["groups"]["finetune"]["ulira_accuracy"] == summary["groups"]["finetune"][
      "ulira_accuracy"]
  # A corrupted shadow file of each kind is a one-line error naming it; nothing is rewritten.
  from unlearn_jax.errors import WorkdirError
  root = tmp_path / "shadows"
  before = (tmp_path / "results.json").read_bytes()
  for rel in ("design.npz", "logits/shadow_original.npz", "logits/finetune.npz",
              "methods/finetune.json"):
    good = (root / rel).read_bytes()
    (root / rel).write_bytes(b"PK\x03\x04 torn" if rel.endswith(".npz") else b'{"sta')
    with pytest.raises(WorkdirError, match=rel.rsplit("/", 1)[-1].replace(".", r"\.")) as e:
      report_lib.evaluate_workdir(tmp_path)
    assert "\n" not in str(e.value) and "corrupted" in str(e.value)
    (root / rel).write_bytes(good)
  assert (tmp_path / "results.json").read_bytes() == before


def test_shadow_eval_ulira_rows_equal_a_recomputation(main_job):
  config, tmp_path, summary = main_job
  summary = json.loads((tmp_path / "results.json").read_text())["shadows"]
  root = tmp_path / "shadows"
  design = dict(np.load(root / "design.npz"))
  n = design["keep"].shape[1]
  for k in range(8):  # each model forgets its own examples, from its half and the pool
    f = set(design["forget_index"][k].tolist())
    assert f <= set(design["subsets"][k].tolist()) & set(design["pool"].tolist())
    assert not f & set(design["retain_index"][k].tolist())
  from unlearn_jax.data import load_dataset
  y = np.asarray(load_dataset("digits").train.y)
  phi = lambda name: np.asarray(logit_scaled_confidence(
      np.load(root / "logits" / f"{name}.npz")["train"], y[None]), np.float64)
  forgotten = np.zeros_like(design["keep"])
  np.put_along_axis(forgotten, design["forget_index"].astype(np.int64), True, axis=1)
  pool = np.isin(np.arange(n), design["pool"])
  for side, name in (("retrain (control)", "shadow_oracle"), ("finetune", "finetune")):
    res = ulira(phi(name), design["keep"], forgotten, phi("shadow_original"), ~design["keep"],
                [6, 7], pool=pool, cap=300, fix_variance=True, exclude_all_targets=True, seed=0)
    assert summary["ulira"][side]["accuracy"]["mean"] == pytest.approx(res["accuracy_mean"])
    assert summary["ulira"][side]["auc"]["mean"] == pytest.approx(res["auc_mean"])
  assert summary["methods"]["finetune"]["status"] == "done"
  # KLOM in the shadow design: the retrain row is the ceiling, the halves are disjoint
  assert summary["ulira"]["retrain (control)"]["klom"] == summary["klom_ceiling"]
  a, b = shadows.halves(forgotten, 0)
  assert not (a & b).any() and ((a | b) == forgotten).all()
  assert (np.abs(a.sum(0) - b.sum(0)) <= 1).all()
  from unlearn_jax.metrics import klom
  mo = phi("shadow_oracle")
  per = klom(phi("finetune"), mo, unlearned_mask=a, oracle_mask=b)
  assert summary["ulira"]["finetune"]["klom"]["forget"] == pytest.approx(
      np.nanpercentile(per, 95))
  # the forget accuracy of each model is over its own forget rows
  test_acc = summary["ulira"]["finetune"]["accuracy_of_models"]["forget"]["mean"]
  lf = np.load(root / "logits" / "finetune.npz")["train"]
  own = [np.mean(np.argmax(lf[k, design["forget_index"][k]], -1) == y[design["forget_index"][k]])
         for k in range(8)]
  assert test_acc == pytest.approx(np.mean(own))
  # a memorisation pool: the pool is the top of the scores file
  config.shadows.update(pool_scores=str(tmp_path / "memorization.npz"), pool_level="high")
  scores = np.load(tmp_path / "memorization.npz")["score"]
  pool = shadows.choose_pool(config, load_dataset("digits"))
  assert len(pool) == 200 and np.nanmin(scores[pool]) >= np.nanmax(np.delete(scores, pool))
  report = (tmp_path / "report.md").read_text()
  assert "retrain (control)" in report and "| finetune |" in report
