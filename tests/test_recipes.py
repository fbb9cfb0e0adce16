"""Named recipes (`experiments/configs/recipes.py`, issue 10): the official values against the
spec's table (45-recipes.md, verified in the source: docs/recipes_sources.md), every value valid
for its method and cited, the generated docs/recipes.md current, the fast recipe unchanged, and
the report naming each method's recipe."""

import json
from pathlib import Path

import pytest

from experiments.configs import recipes
from experiments.configs import unlearn as unlearn_config
from unlearn_jax.methods import METHODS, check_method_config, method_defaults
from unlearn_jax.pipelines import report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official():
  return unlearn_config.get_config("dataset=cifar10,recipe=official")


def test_official_cifar10_values_are_the_spec_tables(official):
  m = official.method_configs
  assert official.recipe == "official"
  # 45-recipes.md rows (each checked in the source review, docs/recipes_sources.md)
  assert (m.amnesiac.optimizer, m.amnesiac.learning_rate, m.amnesiac.batch_size,
          m.amnesiac.epochs) == ("adam", 1e-4, 128, 3)
  assert (m.random_label.learning_rate, m.random_label.batch_size, m.random_label.epochs,
          m.random_label.procedure, m.random_label.allow_true_label,
          m.random_label.momentum, m.random_label.weight_decay,
          m.random_label.schedule) == (0.013, 256, 10, "forget_then_retain", True, 0.9, 5e-4,
                                       "constant")
  assert m.ssd.batch_size == 128
  assert (m["del"].learning_rate, m["del"].epochs, m["del"].batch_size, m["del"].weight_decay,
          m["del"].schedule, m["del"].final_lr_fraction) == (0.015, 30, 128, 0.0,
                                                             "cosine_epoch", 0.01)
  assert (m.scrub.learning_rate, m.scrub.epochs, m.scrub.max_steps, m.scrub.temperature,
          m.scrub.gamma, m.scrub.alpha) == (5e-4, 3, 2, 4.0, 0.99, 0.001)
  assert (m.salun.alpha, m.salun.procedure, m.salun.learning_rate) == (
      0.5, "forget_then_retain", 0.013)
  assert (m.l1_sparse.penalty_decay, m.l1_sparse.epochs, m.l1_sparse.learning_rate,
          m.l1_sparse.schedule) == ("epoch", 10, 0.01, "constant")
  assert (m.neggrad.form, m.neggrad.alpha, m.neggrad.momentum) == ("weighted", 0.9999, 0.0)
  assert (m.neggrad_plus.schedule, m.neggrad_plus.weight_decay, m.neggrad_plus.batch_size,
          m.neggrad_plus.forget_batch_size) == ("constant", 0.0, 128, 128)
  assert (m.ga.epoch_length, m.ga.schedule) == ("retain", "constant")
  assert (m.bad_teacher.learning_rate, m.bad_teacher.epochs, m.bad_teacher.batch_size,
          m.bad_teacher.retain_fraction) == (1e-4, 1, 256, 0.3)
  # the reference training of DEL §7: wd 0
  assert official.train.weight_decay == 0.0


def test_official_values_differ_per_dataset_where_the_code_does():
  svhn = unlearn_config.get_config("dataset=svhn_cropped,recipe=official")
  assert svhn.method_configs["del"].learning_rate == 0.05


@pytest.mark.parametrize("name", [n for n in METHODS if n != "retrain"])
def test_every_official_value_is_a_valid_cited_hyperparameter(name):
  defaults = method_defaults(name)
  for dataset in ("cifar10", "svhn_cropped", "mnist1d"):
    table = recipes.official_values(name, dataset)
    assert set(table) <= set(defaults), (name, set(table) - set(defaults))
    for field, (value, source) in table.items():
      assert type(value) is type(defaults[field]) or isinstance(defaults[field], float), (
          name, field, value)
      assert "@" in source or source.startswith("not in the code"), (name, field, source)
    check_method_config(name, recipes.recipe_values(name, dataset, "official", defaults))


def test_recipes_doc_is_generated_from_the_configs():
  text = (ROOT / "docs" / "recipes.md").read_text()
  assert text == recipes.to_markdown() + "\n", (
      "docs/recipes.md is stale: run python -m experiments.configs.recipes --write docs/recipes.md")
  assert "| learning_rate | 0.001 ‡ | 0.015 |" in text  # ga: tuned fast value vs DEL's


def test_fast_recipe_is_unchanged_for_the_default_benchmark():
  """Every hyperparameter of the default config before recipes existed (commit 23e5947, the one
  that made docs/results/unlearn_default/) is still the `fast` value; the new
  options default to the procedure that run had."""
  recorded = json.loads((ROOT / "tests/data/fast_recipe_mnist1d_23e5947.json").read_text())
  now = unlearn_config.get_config().method_configs.to_dict()
  assert unlearn_config.get_config().recipe == "fast"
  for name, old in recorded["method_configs"].items():
    for field, value in old.items():
      if name == "single_gradient":
        continue  # changed on purpose by the unroll issue (20-unroll.md §3)
      new = now[name][field]
      assert (list(new) if isinstance(new, tuple) else new) == value, (name, field)
    if name == "single_gradient":
      continue
    added = set(now[name]) - set(old)
    old_procedure = {"procedure": "union", "decay_unmasked": False, "penalty_decay": "step",
                     "epoch_length": "forget", "form": "ascent", "forget_cycle": "reshuffle",
                     "l2": 0.0, "train_mode": True, "lr_decay_epochs": "",
                     "aggregation": "sum_then_abs", "mask_drop_last": False}
    for field in added & set(old_procedure):
      if not (name == "neggrad" and field == "forget_cycle"):  # unused by form="ascent"
        assert now[name][field] == old_procedure[field], (name, field)


def test_unknown_recipe_is_a_one_line_error():
  with pytest.raises(ValueError, match="unknown recipe 'paper'; choose one of fast, official"):
    unlearn_config.get_config("recipe=paper")


def test_report_names_the_recipe_and_the_fields_changed_from_it(official):
  config = json.loads(json.dumps(official.to_dict(), default=list))
  used = dict(config["method_configs"]["del"], learning_rate=0.05)
  got = report.recipe_of(config, "del", used)
  assert got == {"recipe": "official", "recipe_changes": {"learning_rate": 0.05}}
  assert report.recipe_cell(got) == "official; changed: learning_rate=0.05"
  assert report.recipe_of(config, "ssd", config["method_configs"]["ssd"])["recipe_changes"] == {}
  assert report.recipe_of({}, "ssd", {"batch_size": 3}) == {"recipe": "fast",
                                                             "recipe_changes": {}}
