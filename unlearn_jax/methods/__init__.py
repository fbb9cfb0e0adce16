"""Unlearning methods by name (`40-methods.md`). One module per method, loaded on first use.

  run_method(name, state, data, config, key, mask=None) -> UnlearnResult
  check_method_config(name, config, data=None) -> resolved hyperparameters (raises if invalid)

See `unlearn_jax.methods.base` for the contract every method module meets.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Mapping, Optional

from unlearn_jax.methods.base import (MethodConfigError, UnlearnData, UnlearnResult,
                                      merged_config)

METHODS = ("retrain", "finetune", "ga", "neggrad", "neggrad_plus", "random_label", "salun",
           "l1_sparse", "scrub", "ssd", "bad_teacher", "amnesiac", "single_gradient", "del")


def get_method(name: str) -> ModuleType:
  """The module implementing method `name`."""
  if name not in METHODS:
    raise ValueError(f"unknown unlearning method '{name}'; choose from {', '.join(METHODS)}")
  return importlib.import_module(f"unlearn_jax.methods.{'del_' if name == 'del' else name}")


def method_defaults(name: str) -> dict:
  return dict(get_method(name).DEFAULTS)


def check_method_config(name: str, config: Mapping[str, Any], data: Optional[UnlearnData] = None
                        ) -> dict:
  """DEFAULTS overridden by `config`, checked by the method's own `check_config` (with the data
  sizes when `data` is given); a `MethodConfigError` names the method and the hyperparameter."""
  module = get_method(name)
  cfg = merged_config(name, module.DEFAULTS, config)
  module.check_config(cfg, data)
  return cfg


def run_method(name: str, state, data: UnlearnData, config: Optional[Mapping[str, Any]], key,
               mask=None) -> UnlearnResult:
  """Run method `name` with DEFAULTS overridden by `config` (unknown keys are an error)."""
  module = get_method(name)
  cfg = merged_config(name, module.DEFAULTS, config)
  return module.unlearn(state, data, cfg, key, mask=mask)


__all__ = ["METHODS", "MethodConfigError", "UnlearnData", "UnlearnResult", "get_method",
           "method_defaults", "check_method_config", "run_method"]
