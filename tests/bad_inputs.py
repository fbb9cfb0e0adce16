"""Bad inputs to the launchers and what each must answer (`tests/test_bad_inputs.py`).

Every case runs a launcher's `main` in-process with the real argument parsing and must exit with
status 2, print one line `error: ...` naming `field` on stderr, and leave the workdir exactly as
it was (absent stays absent). `python tests/bad_inputs.py` runs them all and writes the table of
input -> message in docs/bad_inputs.md (the test checks that the table is current).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io as _io
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad_inputs.md"
CONFIGS = ROOT / "experiments" / "configs"
SMALL = "dataset=digits,model=mlp,seeds=1,oracle_seeds=1,epochs=1"
TRAIN = [f"--config={CONFIGS / 'train.py'}:{SMALL}", "--config.progress=False"]
UNLEARN = [f"--config={CONFIGS / 'unlearn.py'}:{SMALL},methods=finetune",
           "--config.progress=False", "--config.method_configs.finetune.epochs=1"]


DEL_Q = (f"--config={CONFIGS / 'del_localization.py'}:quick", "--config.progress=False")
UNROLL_Q = (f"--config={CONFIGS / 'unroll_sgd.py'}:quick", "--config.progress=False")
WIDTH_Q = (f"--config={CONFIGS / 'width_sweep.py'}:quick", "--config.progress=False")


def unlearn_with(methods: str) -> list[str]:
  return [f"--config={CONFIGS / 'unlearn.py'}:{SMALL},methods={methods}",
          "--config.progress=False"]


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  launcher: str                 # train | unlearn | tune | evaluate
  args: tuple[str, ...]         # after the base arguments; {tmp} is the case's folder
  field: str                    # the message must contain this
  base: tuple[str, ...] = ()    # the launcher's base arguments (config + quiet)
  workdir: Optional[str] = None  # a prepared workdir to copy: trained | unlearned | unrolled
  prepare: Optional[Callable[[Path], None]] = None  # changes the workdir copy before the run
  no_workdir_flag: bool = False


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
  def prepare(wd: Path) -> None:
    (wd / rel).write_bytes(data)
  return prepare


def _config_file(text: bytes) -> Callable[[Path], None]:
  """Write `text` as TMP/cfg.py (beside the absent workdir)."""
  def prepare(wd: Path) -> None:
    wd.parent.mkdir(parents=True, exist_ok=True)
    (wd.parent / "cfg.py").write_bytes(text)
  return prepare


def _drop_logits_key(rel: str, key: str) -> Callable[[Path], None]:
  def prepare(wd: Path) -> None:
    import numpy as np
    with np.load(wd / rel) as f:
      kept = {k: f[k] for k in f.files if k != key}
    np.savez(wd / rel, **kept)
  return prepare


def _corrupt_method_checkpoint(wd: Path) -> None:
  (wd / "eval" / "finetune.npz").unlink()
  for f in (wd / "methods" / "finetune" / "checkpoint").rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
      f.write_bytes(b"\0garbage" * 8)


def _make_file(wd: Path) -> None:
  wd.parent.mkdir(parents=True, exist_ok=True)
  wd.write_text("not a folder\n")


def _read_only(wd: Path) -> None:
  wd.mkdir(parents=True)
  wd.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)


def _empty(wd: Path) -> None:
  wd.mkdir(parents=True)


def _corrupt_checkpoint(wd: Path) -> None:
  ckpt = wd / "models" / "original" / "checkpoints"
  last = max((p for p in ckpt.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
  for f in last.rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
      f.write_bytes(b"\0garbage" * 8)


def _drop_eval(wd: Path) -> None:
  shutil.rmtree(wd / "eval")


def _scores_file(content: Optional[bytes] = None) -> Callable[[Path], None]:
  """Write a memorization scores file TMP/scores.npz beside the (absent) workdir: `content`, or
  an .npz of 10 scores (a wrong length for any of the datasets)."""
  def prepare(wd: Path) -> None:
    path = wd.parent / "scores.npz"
    if content is None:
      import numpy as np
      np.savez(path, score=np.linspace(0.0, 1.0, 10))
    else:
      path.write_bytes(content)
  return prepare


T, U = tuple(TRAIN), tuple(UNLEARN)
SH0 = tuple(unlearn_with("finetune"))
SH = (f"--config={CONFIGS / 'unlearn.py'}:{SMALL},methods=finetune,shadows=8",
      "--config.progress=False", "--config.shadows.pool=200", "--config.shadows.forget_size=40")
STUDY = (f"--config={CONFIGS / 'shadow_study.py'}:quick", "--config.progress=False")
CASES = [
    # The eight of the issue (experiments.train).
    Case("unknown dataset", "train", (f"--config={CONFIGS / 'train.py'}:dataset=nosuch",),
         "config.data.name"),
    Case("unknown model", "train", (f"--config={CONFIGS / 'train.py'}:model=nosuch",),
         "config.model.name"),
    Case("negative width", "train", ("--config.model.width=-1",), "config.model.width", T),
    Case("unknown init", "train", ("--config.model.init=xavier",), "config.model.init", T),
    Case("forget fraction above 1", "train", ("--config.forget.fraction=1.5",),
         "config.forget.fraction", T),
    Case("TFDS dataset not prepared", "train",
         (f"--config={CONFIGS / 'train.py'}:dataset=cifar10", "--config.data.data_dir={tmp}/tfds"),
         "not prepared"),
    Case("batch size 0", "train", ("--config.train.batch_size=0",), "config.train.batch_size", T),
    Case("negative epochs", "train", ("--config.train.epochs=-3",), "config.train.epochs", T),
    Case("NaN learning rate", "train", ("--config.train.learning_rate=nan",),
         "config.train.learning_rate", T),
    # More of the training recipe, data, forget set, seeds.
    Case("negative learning rate", "train", ("--config.train.learning_rate=-0.1",),
         "config.train.learning_rate", T),
    Case("infinite learning rate", "train", ("--config.train.learning_rate=inf",),
         "config.train.learning_rate", T),
    Case("momentum 1.5", "train", ("--config.train.momentum=1.5",), "config.train.momentum", T),
    Case("negative weight decay", "train", ("--config.train.weight_decay=-1",),
         "config.train.weight_decay", T),
    Case("unknown schedule", "train", ("--config.train.schedule=linear",),
         "config.train.schedule", T),
    Case("unknown parallelism", "train", ("--config.train.parallelism=gpus",),
         "config.train.parallelism", T),
    Case("batch larger than the retain set", "train", ("--config.train.batch_size=100000",),
         "config.train.batch_size", T),
    Case("epochs not a number", "train", ("--config.train.epochs=abc",), "config.train.epochs",
         T),
    Case("unknown config field", "train", ("--config.train.epoch=3",), "epoch", T),
    Case("unknown config argument", "train", (f"--config={CONFIGS / 'train.py'}:foo=1",), "foo"),
    Case("duplicate seeds", "train", ("--config.seeds=0,0",), "config.seeds", T),
    Case("duplicate oracle seeds", "train", ("--config.oracle_seeds=1,1",), "config.oracle_seeds",
         T),
    Case("negative seed", "train", ("--config.seeds=0,-1",), "config.seeds", T),
    Case("validation fraction 1", "train", ("--config.data.validation_fraction=1.0",),
         "config.data.validation_fraction", T),
    Case("max_train_examples 0", "train", ("--config.data.max_train_examples=0",),
         "config.data.max_train_examples", T),
    Case("unknown forget kind", "train", ("--config.forget.kind=random",), "config.forget.kind",
         T),
    Case("forget classes out of range", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=non_iid", "--config.forget.classes=2,12"),
         "config.forget.classes"),
    Case("confusion set larger than class A", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=confusion",
          "--config.forget.num_examples=100000"), "config.forget"),
    Case("confusion classes equal", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=confusion", "--config.forget.class_b=3"),
         "config.forget.class_a"),
    # A memorization forget set (RUM): its level, mid_center and scores file.
    Case("unknown memorization level", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=memorization",
          "--config.forget.level=extreme"), "config.forget.level"),
    Case("unknown memorization mid_center", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=memorization",
          "--config.forget.mid_center=mean"), "config.forget.mid_center"),
    Case("memorization scores file missing", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=memorization",
          "--config.forget.scores={tmp}/memorization.npz"), "config.forget.scores"),
    Case("memorization scores of another training set (wrong length)", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=memorization",
          "--config.forget.scores={tmp}/scores.npz"), "config.forget.scores",
         prepare=_scores_file()),
    Case("corrupted memorization scores file", "train",
         (f"--config={CONFIGS / 'train.py'}:{SMALL},forget=memorization",
          "--config.forget.scores={tmp}/scores.npz"), "config.forget.scores",
         prepare=_scores_file(b"PK\x03\x04 not a zip")),
    Case("unknown matmul precision", "train", ("--config.matmul_precision=fast",),
         "config.matmul_precision", T),
    # The workdir.
    Case("no --workdir", "train", (), "--workdir", T, no_workdir_flag=True),
    Case("workdir is a file", "train", (), "is a file", T, prepare=_make_file),
    Case("read-only workdir", "train", (), "read-only", T, prepare=_read_only),
    Case("workdir made with another config", "train", ("--config.train.learning_rate=0.05",),
         "different config", T, workdir="trained"),
    Case("corrupted forget_set.npz", "train", (), "forget_set.npz", T, workdir="trained",
         prepare=_write("forget_set.npz", b"PK\x03\x04 not a zip")),
    Case("corrupted config.json", "train", (), "config.json", T, workdir="trained",
         prepare=_write("config.json", b"{ not json")),
    Case("corrupted checkpoint", "train", (), "checkpoint", T, workdir="trained",
         prepare=_corrupt_checkpoint),
    # experiments.unlearn: methods and their hyperparameters, evaluation settings.
    Case("unknown method", "unlearn", (f"--config={CONFIGS / 'unlearn.py'}:methods=nosuch",),
         "unknown unlearning method"),
    Case("unknown recipe", "unlearn", (f"--config={CONFIGS / 'unlearn.py'}:recipe=paper",),
         "unknown recipe"),
    # Your own method by import path (tests/mymethods/ is on the test process's path).
    Case("user method cannot be imported", "unlearn",
         (f"--config={CONFIGS / 'unlearn.py'}:methods=finetune+nosuchpkg.mymethod",),
         "cannot import user method 'nosuchpkg.mymethod'"),
    Case("user method misses unlearn", "unlearn",
         (f"--config={CONFIGS / 'unlearn.py'}:methods=finetune+mymethods.broken",),
         "no callable unlearn"),
    Case("user method takes a built-in's name", "unlearn",
         (f"--config={CONFIGS / 'unlearn.py'}:methods=mymethods.clash",), "built-in method"),
    Case("user method hyperparameter out of range", "unlearn",
         ("--config.method_configs.shrink_finetune.shrink=1.5",),
         "config.method_configs.shrink_finetune", tuple(unlearn_with(
             "mymethods.shrink_finetune"))),
    Case("unknown RL procedure", "unlearn",
         ("--config.method_configs.random_label.procedure=salun",), "procedure",
         tuple(unlearn_with("random_label"))),
    Case("unknown method hyperparameter", "unlearn",
         ("--config.method_configs.finetune.epochs_typo=1",), "epochs_typo", U),
    Case("method learning rate negative", "unlearn",
         ("--config.method_configs.finetune.learning_rate=-1",),
         "config.method_configs.finetune", U),
    Case("del budget above 1", "unlearn", ('--config.method_configs["del"].alpha=1.5',),
         "alpha", tuple(unlearn_with("del"))),
    Case("del budget 0", "unlearn", ('--config.method_configs["del"].alpha=0.0',),
         "alpha", tuple(unlearn_with("del"))),
    Case("scrub forget batch larger than the forget set", "unlearn",
         ("--config.method_configs.scrub.forget_batch_size=100000",), "forget_batch_size",
         tuple(unlearn_with("scrub"))),
    Case("MIA with 1 fold", "unlearn", ("--config.eval.mia_splits=1",), "config.eval.mia_splits",
         U),
    Case("unknown SVC feature", "unlearn", ("--config.eval.svc_features=colour",),
         "config.eval.svc_features", U),
    Case("unlearn on a workdir made with another config", "unlearn",
         ("--config.train.batch_size=32",), "different config", U, workdir="unlearned"),
    # experiments.tune.
    Case("unknown tuning goal", "tune", ("--config.tune.goal=speed",), "config.tune.goal",
         tuple(unlearn_with("ga"))),
    Case("tuning lambda 2", "tune", ("--config.tune.lam=2",), "config.tune.lam",
         tuple(unlearn_with("ga"))),
    Case("method without a tuning space", "tune", (), "no tuning space",
         tuple(unlearn_with("l1_sparse"))),
    Case("tuning grid lists a value twice", "tune",
         ("--config.tune.space.ga.learning_rate=(0.01, 0.01)",), "tune.space.ga",
         tuple(unlearn_with("ga"))),
    Case("tuning grid with a bad value", "tune",
         ("--config.tune.space.ga.learning_rate=(0.01, -1.0)",), "tune.space.ga",
         tuple(unlearn_with("ga"))),
    Case("tuning without a validation split", "tune", ("--config.data.validation_fraction=0.0",),
         "validation split", tuple(unlearn_with("ga"))),
    # experiments.evaluate.
    Case("evaluate without --workdir", "evaluate", (), "--workdir", no_workdir_flag=True),
    Case("evaluate an absent workdir", "evaluate", (), "not a folder"),
    Case("evaluate an empty workdir", "evaluate", (), "config.json is missing", prepare=_empty),
    Case("evaluate a half-written workdir (no logits)", "evaluate", (), "original.npz is missing",
         workdir="unlearned", prepare=_drop_eval),
    Case("evaluate with corrupted logits", "evaluate", (), "oracle.npz is corrupted",
         workdir="unlearned", prepare=_write("eval/oracle.npz", b"PK\x03\x04 torn")),
    Case("evaluate with a corrupted result.json", "evaluate", (), "result.json",
         workdir="unlearned", prepare=_write("methods/finetune/result.json", b'{"status": "do')),
    Case("evaluate a workdir whose config.json is not an object", "evaluate", (), "config.json",
         workdir="unlearned", prepare=_write("config.json", b"[1, 2]\n")),
    Case("evaluate logits without a split", "evaluate", (), "oracle.npz",
         workdir="unlearned", prepare=_drop_logits_key("eval/oracle.npz", "forget_logits")),
    # A corrupted or foreign file of each kind in a workdir: named, with the fix.
    Case("rerun on a corrupted config.json", "unlearn", (), "config.json", U,
         workdir="unlearned", prepare=_write("config.json", b'{"seeds": [0')),
    Case("rerun on a corrupted forget set", "unlearn", (), "forget_set.npz", U,
         workdir="unlearned", prepare=_write("forget_set.npz", b"PK\x03\x04 torn")),
    Case("evaluate with corrupted reference costs", "evaluate", (), "references.json",
         workdir="unlearned", prepare=_write("eval/references.json", b"{not json")),
    Case("evaluate with a corrupted last summary", "evaluate", (), "summary.json",
         workdir="unlearned", prepare=_write("summary.json", b'{"wall_s": ')),
    Case("rerun with a method's logits corrupted", "unlearn", (), "finetune.npz", U,
         workdir="unlearned", prepare=_write("eval/finetune.npz", b"PK\x03\x04 torn")),
    Case("rerun with a method's checkpoint corrupted and its logits gone", "unlearn", (),
         "finetune", U, workdir="unlearned", prepare=_corrupt_method_checkpoint),
    # Config files: missing, not Python, no get_config, another launcher's.
    Case("config file does not exist", "train", ("--config={tmp}/nosuch.py",), "does not exist"),
    Case("config file with a syntax error", "unlearn", ("--config={tmp}/cfg.py",),
         "syntax error at line 1", prepare=_config_file(b"def get_config(:\n")),
    Case("config file without get_config", "tune", ("--config={tmp}/cfg.py",),
         "defines no get_config", prepare=_config_file(b"X = 1\n")),
    Case("study given the main job's config", "del_localization",
         (f"--config={CONFIGS / 'unlearn.py'}",), "not a config of this launcher"),
    Case("benchmark search given the main job's config", "benchmark_search",
         (f"--config={CONFIGS / 'unlearn.py'}",), "not a config of this launcher"),
    Case("width sweep given the unroll study's config", "width_sweep",
         (f"--config={CONFIGS / 'unroll_sgd.py'}:quick",), "not a config of this launcher"),
    Case("unroll study given the DEL study's config", "unroll_sgd",
         (f"--config={CONFIGS / 'del_localization.py'}:quick",), "not a config of this launcher"),
    Case("main job given the training config", "unlearn",
         (f"--config={CONFIGS / 'train.py'}",), "not a config of this launcher"),
    # The paper studies' launchers (each also tests its own in its test file).
    Case("DEL study: unknown strategy", "del_localization", ("--config.strategies=('del','magic')",),
         "config.strategies", DEL_Q),
    Case("DEL study: budget above 1", "del_localization", ("--config.budgets=(0.3,1.5)",),
         "config.budgets", DEL_Q),
    Case("DEL study: MIA with one fold", "del_localization", ("--config.eval.mia_splits=1",),
         "config.eval.mia_splits", DEL_Q),
    Case("DEL study: unknown SVC feature", "del_localization",
         ("--config.eval.svc_features=('confidence','loudness')",), "config.eval.svc_features",
         DEL_Q),
    Case("DEL study: unknown forget kind", "del_localization",
         (), "rare", (f"--config={CONFIGS / 'del_localization.py'}:quick,forget=iid+rare",
                      "--config.progress=False")),
    Case("DEL study: claims tolerance negative", "del_localization",
         ("--config.claims_tolerance_pp=-1",), "config.claims_tolerance_pp", DEL_Q),
    Case("unroll study: negative SD lambda", "unroll_sgd", ("--config.sweep.lambdas=-1",),
         "config.sweep.lambdas", UNROLL_Q),
    Case("unroll study: zero learning rate", "unroll_sgd",
         ("--config.sweep.learning_rates=0,0.1",), "config.sweep.learning_rates", UNROLL_Q),
    Case("unroll study: batch larger than the data", "unroll_sgd",
         ("--config.sweep.batch_size=5000",), "config.sweep.batch_size", UNROLL_Q),
    Case("unroll study: unknown config argument", "unroll_sgd",
         (), "valid keys", (f"--config={CONFIGS / 'unroll_sgd.py'}:quick,speed=2",
                            "--config.progress=False")),
    Case("width sweep: negative width", "width_sweep", ("--config.sweep.widths=(0.5,-1.0)",),
         "sweep.widths", WIDTH_Q),
    Case("width sweep: a width twice", "width_sweep", ("--config.sweep.widths=(0.5,0.5)",),
         "lists a width twice", WIDTH_Q),
    Case("width sweep: unknown method model axis", "width_sweep",
         ("--config.sweep.method_model_axis=diagonal",), "config.sweep.method_model_axis",
         WIDTH_Q),
    Case("width sweep: NaN in the lambda list", "width_sweep", ("--config.tune.lams=0.2,nan",),
         "config.tune.lams", WIDTH_Q),
    Case("width sweep: zero label maps", "width_sweep", ("--config.sweep.regions.maps=-1",),
         "config.sweep.regions.maps", WIDTH_Q),
    Case("width sweep: region grid of one point", "width_sweep",
         ("--config.sweep.regions.resolution=1",), "config.sweep.regions.resolution", WIDTH_Q),
    Case("DEL study: unknown part", "del_localization", ("--config.parts=('a','z')",),
         "config.parts", DEL_Q),
    Case("DEL study: algorithms without Reset+Finetune", "del_localization",
         ("--config.algorithms=('finetune',)",), "config.algorithms", DEL_Q),
    Case("DEL study: top_h above 1", "del_localization", ("--config.localization.top_h=2.0",),
         "config.localization.top_h", DEL_Q),
    Case("DEL study: unknown critmem units", "del_localization",
         ("--config.localization.critmem_units=neurons",), "config.localization.critmem_units",
         DEL_Q),
    Case("DEL study: baseline tuning λ above 1", "del_localization",
         ("--config.baselines.lam=1.5",), "config.baselines.lam", DEL_Q),
    Case("DEL study: baseline grid the method refuses", "del_localization",
         ("--config.baselines.space.random_label.learning_rate=(0.01,-1.0)",),
         "config.baselines.space.random_label", DEL_Q),
    Case("DEL study: reference trained 0 epochs", "del_localization",
         ("--config.reference.train.epochs=0",), "config.reference.train.epochs", DEL_Q),
    Case("DEL study: negative method learning rate", "del_localization",
         ("--config.method_configs.random_label.learning_rate=-1.0",),
         "config.method_configs.random_label", DEL_Q),
    Case("DEL study: workdir is a file", "del_localization", (), "is a file", DEL_Q,
         prepare=_make_file),
    Case("unroll study: unknown sigma form", "unroll_sgd", ("--config.sweep.sigma_form=log",),
         "config.sweep.sigma_form", UNROLL_Q),
    Case("unroll study: sigma every more steps than the run", "unroll_sgd",
         ("--config.sweep.sigma_every=100",), "config.sweep.sigma_every", UNROLL_Q),
    Case("unroll study: pretrained 0 epochs", "unroll_sgd", ("--config.pretrain.epochs=0",),
         "config.pretrain.epochs", UNROLL_Q),
    Case("unroll study: workdir is a file", "unroll_sgd", (), "is a file", UNROLL_Q,
         prepare=_make_file),
    Case("unroll study: rerun on a corrupted unroll record", "unroll_sgd", (), "lam_0.npz",
         UNROLL_Q, workdir="unrolled", prepare=_write("unroll/lam_0.npz", b"PK\x03\x04 torn")),
    Case("unroll study: rerun on a corrupted config.json", "unroll_sgd", (), "config.json",
         UNROLL_Q, workdir="unrolled", prepare=_write("config.json", b'{"sweep": ')),
    Case("unroll study: rerun on a config.json that is not an object", "unroll_sgd", (),
         "config.json", UNROLL_Q, workdir="unrolled", prepare=_write("config.json", b'"x"\n')),
    Case("width sweep: headline lambda not among the lambdas", "width_sweep",
         ("--config.tune.lam=0.3",), "config.tune.lam", WIDTH_Q),
    Case("width sweep: no triplets", "width_sweep", ("--config.sweep.regions.triplets=0",),
         "config.sweep.regions.triplets", WIDTH_Q),
    Case("width sweep: SCRUB alpha 0 in the grid", "width_sweep",
         ("--config.tune.space.scrub.alpha=(0.0,)",), "alpha", WIDTH_Q),
    Case("width sweep: more label maps than triplets", "width_sweep",
         ("--config.sweep.regions.maps=5",), "config.sweep.regions.maps", WIDTH_Q),
    Case("width sweep: workdir is a file", "width_sweep", (), "is a file", WIDTH_Q,
         prepare=_make_file),
    Case("benchmark search: workdir is a file", "benchmark_search", (), "is a file",
         (f"--config={CONFIGS / 'benchmark_search.py'}:quick=true", "--config.progress=False"),
         prepare=_make_file),
    Case("benchmark search: unknown setting", "benchmark_search",
         (), "nosuch", (f"--config={CONFIGS / 'benchmark_search.py'}:quick=true,settings=nosuch",
                        "--config.progress=False")),
    # experiments.shadow_eval / experiments.memorization (shadow models).
    Case("shadow_eval without shadows", "shadow_eval", (), "config.shadows.num", SH0),
    Case("odd number of shadow models", "shadow_eval", ("--config.shadows.num=9",),
         "config.shadows.num", SH),
    Case("more U-LiRA targets than shadow models allow", "shadow_eval",
         ("--config.shadows.targets=8",), "config.shadows.targets", SH),
    Case("per-model forget set larger than half the pool", "shadow_eval",
         ("--config.shadows.forget_size=150",), "config.shadows.forget_size", SH),
    Case("memorisation pool from a missing scores file", "shadow_eval",
         ("--config.shadows.pool_scores={tmp}/nosuch.npz",), "config.shadows.pool_scores", SH),
    Case("shadow method the main job does not run", "shadow_eval",
         ("--config.shadows.methods=ga",), "config.shadows.methods", SH),
    Case("unknown shadow design", "memorization", ("--config.shadows.design=halves",),
         "config.shadows.design", (f"--config={CONFIGS / 'memorization.py'}:quick",
                                   "--config.progress=False")),
    Case("memorization: workdir is a file", "memorization", (), "is a file",
         (f"--config={CONFIGS / 'memorization.py'}:quick", "--config.progress=False"),
         prepare=_make_file),
    Case("shadow study: workdir is a file", "shadow_study", (), "is a file", STUDY,
         prepare=_make_file),
    Case("study bank that is the evaluated bank", "shadow_study", ("--config.study.bank_seed=0",),
         "config.study.bank_seed", STUDY),
    Case("unknown forget-pool kind in the study", "shadow_study",
         ("--config.study.kinds=iid,rare",), "config.study.kinds", STUDY),
]

_LAUNCHERS = {"train": "experiments.train", "unlearn": "experiments.unlearn",
              "tune": "experiments.tune", "evaluate": "experiments.evaluate",
              "shadow_eval": "experiments.shadow_eval", "memorization": "experiments.memorization",
              "shadow_study": "experiments.shadow_study",
              "del_localization": "experiments.del_localization",
              "unroll_sgd": "experiments.unroll_sgd", "width_sweep": "experiments.width_sweep",
              "benchmark_search": "experiments.benchmark_search"}
_DEFAULT_CONFIGS = {"train": CONFIGS / "train.py", "unlearn": CONFIGS / "unlearn.py",
                    "tune": CONFIGS / "unlearn.py", "evaluate": None,
                    "shadow_eval": CONFIGS / "unlearn.py", "memorization": CONFIGS / "memorization.py",
                    "shadow_study": CONFIGS / "shadow_study.py",
                    **{k: CONFIGS / f"{k}.py" for k in ("del_localization", "unroll_sgd",
                                                        "width_sweep", "benchmark_search")}}


def _config_file_cases() -> list[Case]:
  """Every launcher with a config x the config-file errors: missing, a syntax error, no
  get_config, another launcher's config (the cases spelled out above are not repeated)."""
  spelled = {(c.launcher, c.field) for c in CASES}
  out = []
  for launcher, default in _DEFAULT_CONFIGS.items():
    if default is None:
      continue
    foreign = CONFIGS / ("del_localization.py" if launcher == "unroll_sgd" else "unroll_sgd.py")
    for name, args, field, prepare in (
        ("config file does not exist", ("--config={tmp}/nosuch.py",), "does not exist", None),
        ("config file with a syntax error", ("--config={tmp}/cfg.py",), "syntax error at line 1",
         _config_file(b"def get_config(:\n")),
        ("config file without get_config", ("--config={tmp}/cfg.py",), "defines no get_config",
         _config_file(b"X = 1\n")),
        (f"{foreign.stem}'s config", (f"--config={foreign}",), "not a config of this launcher",
         None)):
      if (launcher, field) not in spelled:
        out.append(Case(f"{launcher}: {name}", launcher, args, field, prepare=prepare))
  return out


CASES += _config_file_cases()


def run_launcher(launcher: str, argv: list[str]) -> tuple[int, str, str]:
  """Run `experiments.<launcher>`'s main in this process: (exit status, stdout, stderr)."""
  return run_launcher_module(_LAUNCHERS[launcher], _DEFAULT_CONFIGS[launcher], argv)


def run_launcher_module(module_name: str, default_config, argv: list[str]
                        ) -> tuple[int, str, str]:
  """Run launcher module `module_name`'s `job` through `experiments.launch.main` in this
  process, with the real flag parsing: (exit status, stdout, stderr)."""
  import importlib

  from experiments.launch import main

  module = importlib.import_module(module_name)
  out, err = _io.StringIO(), _io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = main([module_name, *argv], module.job,
              default_config=None if default_config is None else str(default_config))
  return rc, out.getvalue(), err.getvalue()


def make_workdirs(root: Path) -> dict[str, Path]:
  """The prepared workdirs the cases start from: `trained` (experiments.train), `unlearned`
  (experiments.unlearn with finetune) and `unrolled` (the quick unroll study)."""
  dirs = {name: root / name for name in ("trained", "unlearned", "unrolled")}
  for name, args, launcher in (("trained", TRAIN, "train"), ("unlearned", UNLEARN, "unlearn"),
                               ("unrolled", list(UNROLL_Q), "unroll_sgd")):
    if not (dirs[name] / "summary.json").exists():
      rc, _, err = run_launcher(launcher, [*args, f"--workdir={dirs[name]}"])
      assert rc == 0, err
  return dirs


def snapshot(path: Path) -> dict:
  """Every file and folder under `path` with its content hash and mode (None: absent)."""
  if not path.exists() and not path.is_symlink():
    return {"": None}
  if path.is_file():
    return {"": ("file", hashlib.sha256(path.read_bytes()).hexdigest())}
  out = {"": ("dir", stat.S_IMODE(path.stat().st_mode))}
  for p in sorted(path.rglob("*")):
    rel = str(p.relative_to(path))
    out[rel] = (("file", hashlib.sha256(p.read_bytes()).hexdigest()) if p.is_file()
                else ("dir", stat.S_IMODE(p.stat().st_mode)))
  return out


def prepare_case(case: Case, tmp: Path, workdirs: dict[str, Path]) -> tuple[Path, list[str]]:
  """The case's workdir (copied or made) and its full argument list."""
  wd = tmp / "wd"
  if case.workdir:
    shutil.copytree(workdirs[case.workdir], wd)
  if case.prepare:
    case.prepare(wd)
  args = [*case.base, *(a.replace("{tmp}", str(tmp)) for a in case.args)]
  if not case.no_workdir_flag:
    args.append(f"--workdir={wd}")
  return wd, args


def run_case(case: Case, tmp: Path, workdirs: dict[str, Path]) -> dict:
  """Run one case: exit status, stderr, the message with paths replaced, workdir unchanged?"""
  wd, args = prepare_case(case, tmp, workdirs)
  before = snapshot(wd)
  try:
    rc, out, err = run_launcher(case.launcher, args)
    after = snapshot(wd)
  finally:
    if wd.is_dir():
      wd.chmod(0o755)
  message = err.strip().replace(str(tmp), "TMP")
  for name, path in workdirs.items():
    message = message.replace(str(path), f"<{name} workdir>")
  return {"rc": rc, "stdout": out, "stderr": err, "message": message.replace(str(ROOT), "."),
          "unchanged": before == after}


def command_of(case: Case) -> str:
  """How the case reads in the table: launcher and its arguments, paths shortened."""
  args = [a.replace(str(CONFIGS), "experiments/configs").replace("{tmp}", "TMP")
          for a in (*case.base, *case.args)]
  args = [a for a in args if a != "--config.progress=False"]
  text = f"`{_LAUNCHERS[case.launcher]} {' '.join(args)}`".replace(" `", "`")
  setup = {None: "", "trained": "on a trained workdir", "unlearned": "on a finished unlearn run",
           "unrolled": "on a finished quick unroll study"}
  return text + (f" ({setup[case.workdir]})" if case.workdir else "")


def table(results: dict[str, dict]) -> str:
  lines = ["# Bad inputs and what the launchers answer", "",
           "Generated by `python tests/bad_inputs.py` (checked by `tests/test_bad_inputs.py`): "
           "every case exits with status 2, prints this one line on stderr and leaves the "
           "workdir as it was. `TMP` is the case's temporary folder; the workdir is `TMP/wd`. "
           f"Base arguments: `{SMALL}` with `--config.progress=False` (and "
           "`--config.method_configs.finetune.epochs=1` for the unlearn cases).", "",
           "| # | bad input | command | stderr |", "|---|---|---|---|"]
  for i, case in enumerate(CASES, 1):
    msg = results[case.name]["message"].replace("|", "\\|")
    lines.append(f"| {i} | {case.name} | {command_of(case)} | {msg} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  import tempfile

  from unlearn_jax import runtime
  root = Path(tempfile.mkdtemp(prefix="bad-inputs-"))
  os.environ.setdefault(runtime.ENV_DIR, str(root / "xla"))
  try:
    workdirs = make_workdirs(root / "base")
    results = {}
    for i, case in enumerate(CASES):
      tmp = root / f"case{i}"
      tmp.mkdir()
      results[case.name] = run_case(case, tmp, workdirs)
      r = results[case.name]
      ok = r["rc"] == 2 and r["unchanged"] and len(r["stderr"].strip().splitlines()) == 1
      print(f"{'ok ' if ok else 'BAD'} {case.name}: {r['message']}", file=sys.stderr)
    DOC.write_text(table(results))
    print(f"wrote {DOC}")
  finally:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  main()
