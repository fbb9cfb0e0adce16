"""Data: datasets (bundled offline + TFDS) and forget-set builders."""

from unlearn_jax.data.datasets import DATASETS
from unlearn_jax.data.datasets import Dataset
from unlearn_jax.data.datasets import DatasetNotPreparedError
from unlearn_jax.data.datasets import load_dataset
from unlearn_jax.data.datasets import Split
from unlearn_jax.data.forget import build_forget_set
from unlearn_jax.data.forget import classwise
from unlearn_jax.data.forget import confusion
from unlearn_jax.data.forget import FORGET_KINDS
from unlearn_jax.data.forget import ForgetSet
from unlearn_jax.data.forget import iid
from unlearn_jax.data.forget import load_forget_set
from unlearn_jax.data.forget import load_or_build_forget_set
from unlearn_jax.data.forget import non_iid
from unlearn_jax.data.forget import save_forget_set
from unlearn_jax.data.forget import validate_forget_indices

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetNotPreparedError",
    "FORGET_KINDS",
    "ForgetSet",
    "Split",
    "build_forget_set",
    "classwise",
    "confusion",
    "iid",
    "load_dataset",
    "load_forget_set",
    "load_or_build_forget_set",
    "non_iid",
    "save_forget_set",
    "validate_forget_indices",
]
