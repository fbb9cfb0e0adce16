"""Orchestration of the experiments behind the launchers in `experiments/` (the kernels at the
package root never import from here).

  layout       every path of a workdir (`Workdir`)
  validate     the whole config checked before anything is written (`plan`)
  experiment   setup: checked config + workdir, data, forget set, model; keys, meshes, logits
  reference    resumable training of the `original` and `oracle` groups; `experiments.train`
  unlearn      every configured method on the original models; `experiments.unlearn`
  tune         validation-based tuning of the methods; `experiments.tune`
  report       the report recomputed from saved logits; `experiments.evaluate`

Submodules are imported on use (the report needs matplotlib, the others do not).
"""
