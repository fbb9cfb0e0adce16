"""Reproducible numbers: same config and seed give the same numbers on the same machine, and N
seeds trained in one program give the numbers of N separate runs.

On CPU XLA is deterministic already. On GPU some kernels (cuDNN convolution backward passes,
scatter-adds) pick non-deterministic algorithms: measured on an H100, the same seed trained a CNN
to parameters 1.8e-5 apart (docs/platform.md). `--xla_gpu_deterministic_ops=true` forces
deterministic kernels at some speed cost. XLA reads XLA_FLAGS when the backend starts, so call
`request_deterministic_ops()` before the first JAX computation (the launchers do, from config
option `deterministic`, on by default).

Precision: on GPUs JAX runs float32 matmuls and convolutions in TF32 by default. Then a vmapped
(batched) kernel and N single ones round differently: measured on an H100, 3 CNN/MLP seeds
trained 2 epochs vmapped vs separately differed by up to 8.5e-3 in parameters; with precision
'highest' by 1.2e-7. The launchers set `jax_default_matmul_precision` from config option
`matmul_precision` ('highest' by default; 'default' trades this for TF32 speed).
"""

from __future__ import annotations

import os

FLAG = "--xla_gpu_deterministic_ops=true"


def configure(*, deterministic: bool = True, matmul_precision: str | None = "highest") -> None:
  """Apply the launchers' reproducibility options (call before the first computation)."""
  import jax

  if deterministic:
    request_deterministic_ops()
  if matmul_precision:
    jax.config.update("jax_default_matmul_precision", matmul_precision)


def request_deterministic_ops() -> bool:
  """Add the deterministic-ops flag to XLA_FLAGS; returns False if the backend already started."""
  flags = os.environ.get("XLA_FLAGS", "")
  if FLAG not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
  try:
    from jax._src import xla_bridge  # private: only to tell whether the flag can still apply
    return not xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):
    return True
