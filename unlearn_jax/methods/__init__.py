"""Unlearning methods by name (`40-methods.md`). One module per method, loaded on first use.

  run_method(name, state, data, config, key, mask=None) -> UnlearnResult
  check_method_config(name, config, data=None) -> resolved hyperparameters (raises if invalid)

See `unlearn_jax.methods.base` for the contract every method module meets.

Your own method: any module or object meeting that contract (`DEFAULTS`, `check_config`,
`unlearn`; optional `VECTORIZED`, `USES_FORGET`, `NAME`, and `TUNE_SPACE`, the default grids of
`experiments.tune`) runs everywhere a built-in method does
(the main job, `experiments.tune`, `experiments.evaluate`, the report) once it has a name:

  register("mine", my_module)          # in-process (a notebook, `run_unlearn(config, workdir)`)
  --config=...unlearn.py:methods=finetune+mypkg.mine   # an import path, in any launcher

An import path `pkg.module` (or `pkg.module:attribute`) is imported and registered under the
object's `NAME`, else the path's last component (a config key, so no dots).
"""

from __future__ import annotations

import importlib
import keyword
import types
from collections.abc import Mapping as _MappingABC
from typing import Any, Mapping, Optional

from unlearn_jax.methods.base import (MethodConfigError, UnlearnData, UnlearnResult,
                                      merged_config)

METHODS = ("retrain", "finetune", "ga", "neggrad", "neggrad_plus", "random_label", "salun",
           "l1_sparse", "scrub", "ssd", "bad_teacher", "amnesiac", "single_gradient", "del")

_USER: dict[str, Any] = {}        # name -> the registered method (a namespace over the user's)
_SOURCES: dict[str, Any] = {}     # name -> what the user registered (module, object or path)


class MethodContractError(MethodConfigError):
  """A user method does not meet the method contract (the message names what is missing)."""


def _contract_error(name: str, what: str) -> MethodContractError:
  return MethodContractError(
      f"user method '{name}' does not meet the method contract: {what}; define DEFAULTS (a dict "
      f"of hyperparameters), check_config(config, data=None) and unlearn(state, data, config, "
      f"key, mask=None) (see unlearn_jax/methods/base.py)")


def _checked(name: str, obj: Any) -> types.SimpleNamespace:
  """The contract's members of `obj`, with the optional ones filled in (VECTORIZED = (),
  USES_FORGET = True)."""
  defaults = getattr(obj, "DEFAULTS", None)
  if not isinstance(defaults, _MappingABC):
    raise _contract_error(name, "no DEFAULTS mapping" if defaults is None else
                          f"DEFAULTS is a {type(defaults).__name__}, not a mapping")
  bad = [k for k in defaults if not isinstance(k, str) or not k.isidentifier()]
  if bad:
    raise _contract_error(name, f"DEFAULTS keys {bad} are not identifiers")
  for member in ("check_config", "unlearn"):
    if not callable(getattr(obj, member, None)):
      raise _contract_error(name, f"no callable {member}")
  vectorized = tuple(getattr(obj, "VECTORIZED", ()))
  stray = [v for v in vectorized if v not in defaults]
  if stray:
    raise _contract_error(name, f"VECTORIZED names {stray}, not in DEFAULTS")
  tune_space = getattr(obj, "TUNE_SPACE", {})
  if not isinstance(tune_space, _MappingABC) or set(tune_space) - set(defaults):
    raise _contract_error(name, "TUNE_SPACE must map hyperparameters of DEFAULTS to grids")
  uses_forget = getattr(obj, "USES_FORGET", True)
  if not isinstance(uses_forget, bool):
    raise _contract_error(name, f"USES_FORGET is {uses_forget!r}, not True or False")
  return types.SimpleNamespace(
      __name__=getattr(obj, "__name__", name), NAME=name, DEFAULTS=dict(defaults),
      check_config=obj.check_config, unlearn=obj.unlearn, VECTORIZED=vectorized,
      USES_FORGET=uses_forget, TUNE_SPACE=dict(tune_space), USER=True)


def _check_name(name: Any) -> str:
  if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
    raise MethodConfigError(f"method name {name!r} is not a valid name; use letters, digits and "
                            f"underscores (it is a config key), e.g. register('my_method', module)")
  if name in METHODS:
    raise MethodConfigError(f"method name '{name}' is a built-in method's; register yours under "
                            f"another name (or set NAME in its module)")
  return name


def import_method(path: str) -> tuple[str, Any]:
  """(name, object) of the method at import path `pkg.module` or `pkg.module:attribute`."""
  module_path, _, attr = path.partition(":")
  try:
    obj: Any = importlib.import_module(module_path)
  except ImportError as e:
    raise MethodConfigError(f"cannot import user method '{path}' ({e}); put its package on "
                            f"PYTHONPATH or pip-install it") from None
  if attr:
    if not hasattr(obj, attr):
      raise MethodConfigError(f"user method '{path}': module '{module_path}' has no attribute "
                              f"'{attr}'; name an object defined there")
    obj = getattr(obj, attr)
  name = getattr(obj, "NAME", None) or (attr or module_path.rsplit(".", 1)[-1])
  return name, obj


def register(name: Optional[str], method: Any) -> str:
  """Make `method` (a module, an object, or an import path string) runnable as method `name`
  (None: its `NAME`, or the import path's last component). Registering the same method under
  the same name again is a no-op; another method under a taken name is an error. Returns the
  name."""
  if isinstance(method, str):
    path_name, method = import_method(method)
    name = name or path_name
  name = _check_name(name or getattr(method, "NAME", None) or getattr(method, "__name__", None))
  if name in _USER:
    if _SOURCES[name] is method:
      return name
    raise MethodConfigError(f"a different user method is already registered as '{name}'; "
                            f"unregister('{name}') first or choose another name")
  _USER[name] = _checked(name, method)
  _SOURCES[name] = method
  return name


def unregister(name: str) -> None:
  """Forget user method `name` (no error if it is not registered)."""
  _USER.pop(name, None)
  _SOURCES.pop(name, None)


def resolve(spec: str) -> str:
  """The method name of `spec`: a built-in or registered name as it is; an import path (it
  contains a dot) imported and registered."""
  if spec in METHODS or spec in _USER:
    return spec
  if "." in spec:
    return register(None, spec)
  raise ValueError(f"unknown unlearning method '{spec}'; choose from {', '.join(method_names())} "
                   f"or give your own method's import path (pkg.module)")


def method_names() -> tuple[str, ...]:
  """The built-in methods, then the registered user methods."""
  return METHODS + tuple(_USER)


def is_user_method(name: str) -> bool:
  return name in _USER


def get_method(name: str) -> Any:
  """The module (or, for a user method, the namespace) implementing method `name`."""
  if name in _USER:
    return _USER[name]
  if name not in METHODS:
    raise ValueError(f"unknown unlearning method '{name}'; choose from "
                     f"{', '.join(method_names())}")
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


__all__ = ["METHODS", "MethodConfigError", "MethodContractError", "UnlearnData", "UnlearnResult",
           "get_method", "method_defaults", "check_method_config", "run_method", "register",
           "unregister", "resolve", "method_names", "is_user_method", "import_method"]
