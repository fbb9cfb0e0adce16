"""Pure training: `TrainState`, `train_step`, `evaluate`, `fit`, for one model or many at once.

A state is *stacked* when every leaf has a leading model axis (N seeds trained in one compiled
program through `jax.vmap`); `num_models(state)` tells which. All functions accept both.

Devices (`fit(..., mesh=...)`): a mesh with axis `data` (`data_parallel_mesh`) splits every batch
over its devices, the state replicated; a mesh with axis `model` (`model_parallel_mesh`) splits
the N stacked models over its devices, each device training its own N / D models on full
batches inside `jax.shard_map`, with no cross-device traffic but the epoch's mean metrics.

Recipe (shared by the three papers' reference code): SGD with momentum and coupled weight decay
(PyTorch's `SGD(weight_decay=...)`: g <- g + wd * theta before momentum, applied to every
parameter), a cosine or constant learning-rate schedule stepped per update, cross-entropy loss,
and a fresh PRNG-driven permutation of the training set every epoch. The last partial batch of an
epoch is dropped so every step has the same shape (each epoch reshuffles, so every example is
used); the permutation of epoch e is drawn from `fold_in(key, e)`, so a resumed run sees exactly
the batches an uninterrupted run would.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import flax.struct as struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from unlearn_jax.models import Model

SCHEDULES = ("cosine", "constant", "cosine_epoch")
MODEL_AXIS_STRATEGIES = ("auto", "vmap", "unrolled")

# (logits, labels, params, step) -> scalar loss; `step` is the optimizer step (for schedules).
Objective = Callable[[jax.Array, jax.Array, Any, jax.Array], jax.Array]


@struct.dataclass
class TrainState:
  """Everything that changes during training. `apply_fn` and `tx` are static (not leaves)."""
  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  apply_fn: Callable = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def num_models(state: TrainState) -> Optional[int]:
  """N for a stacked state (leading model axis), None for a single model."""
  return None if jnp.ndim(state.step) == 0 else int(state.step.shape[0])


def make_optimizer(*, learning_rate: float, total_steps: int, momentum: float = 0.9,
                   weight_decay: float = 0.0, schedule: str = "cosine",
                   final_lr_fraction: float = 0.0, nesterov: bool = False,
                   epoch_steps: Optional[int] = None, decay_boundaries: tuple = (),
                   decay_rate: float = 0.1) -> optax.GradientTransformation:
  """SGD with momentum, coupled weight decay and a schedule.

  `cosine` decays from `learning_rate` to `final_lr_fraction * learning_rate` over `total_steps`,
  updated every step; `cosine_epoch` is the same curve updated once per epoch of `epoch_steps`
  steps, lr_e = f·lr + (lr − f·lr)·(1 + cos(π e / E)) / 2 for epoch e of E = total_steps /
  epoch_steps, as PyTorch's `CosineAnnealingLR(T_max=E, eta_min=f·lr)` stepped per epoch (DEL's
  finetuning, f = 0.01); `constant` keeps `learning_rate`. `decay_boundaries` (optimizer steps)
  multiply the learning rate by `decay_rate` from each boundary on (a step decay, e.g. SCRUB's
  `lr_decay_epochs`), on top of any schedule. Weight decay is PyTorch's coupled form
  (g + wd·θ before momentum).
  """
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown learning-rate schedule '{schedule}'; choose one of "
                     f"{', '.join(SCHEDULES)}")
  if schedule == "cosine_epoch" and (not epoch_steps or epoch_steps < 1):
    raise ValueError("schedule 'cosine_epoch' needs epoch_steps >= 1 (steps per epoch)")
  if learning_rate <= 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
  lr = learning_rate_schedule(learning_rate, total_steps=total_steps, schedule=schedule,
                              final_lr_fraction=final_lr_fraction, epoch_steps=epoch_steps,
                              decay_boundaries=decay_boundaries, decay_rate=decay_rate)
  parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  parts.append(optax.sgd(lr, momentum=momentum or None, nesterov=nesterov))
  return optax.chain(*parts)


def learning_rate_schedule(learning_rate, *, total_steps: int, schedule: str,
                           final_lr_fraction: float = 0.0, epoch_steps: Optional[int] = None,
                           decay_boundaries: tuple = (), decay_rate: float = 0.1):
  """The learning rate of `make_optimizer` (a number or a function of the step), without value
  checks, so that `learning_rate` may be traced (one value per model under vmap)."""
  if schedule == "cosine":
    lr = optax.cosine_decay_schedule(learning_rate, max(1, total_steps), alpha=final_lr_fraction)
  elif schedule == "cosine_epoch":
    per_epoch = optax.cosine_decay_schedule(learning_rate, max(1, total_steps // epoch_steps),
                                            alpha=final_lr_fraction)
    lr = lambda step: per_epoch(step // epoch_steps)
  else:
    lr = learning_rate
  if decay_boundaries:
    base_lr = lr if callable(lr) else (lambda step, v=lr: v)
    bounds = jnp.asarray(sorted(decay_boundaries), jnp.int32)
    lr = lambda step: base_lr(step) * decay_rate ** jnp.sum(step >= bounds)
  return lr


@functools.lru_cache(maxsize=None)
def _compiled_init(init_fn, image_shape: tuple, stacked: bool):
  """Jitted (params, model_state) initialiser, compiled once per model and input shape."""
  sample = jnp.zeros((1, *image_shape), jnp.float32)
  one = lambda k: init_fn(k, sample)
  return jax.jit(jax.vmap(one) if stacked else one)


def create_train_state(model: Model, tx: optax.GradientTransformation, key: jax.Array,
                       image_shape) -> TrainState:
  """A fresh state: parameters initialised from `key`, optimizer state from `tx`.

  `key` may be a single key or a batch of keys `[N, ...]`, giving a stacked state of N models.
  """
  stacked = jnp.ndim(key) == 2 or (jnp.ndim(key) == 1 and jax.dtypes.issubdtype(
      key.dtype, jax.dtypes.prng_key))
  params, model_state = _compiled_init(model.init, tuple(image_shape), stacked)(key)
  opt_state = (jax.vmap(tx.init) if stacked else tx.init)(params)
  step = jnp.zeros((key.shape[0],) if stacked else (), jnp.int32)
  return TrainState(step=step, params=params, model_state=model_state, opt_state=opt_state,
                    apply_fn=model.apply, tx=tx)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy with integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def ce_objective(logits, labels, params, step):
  del params, step
  return cross_entropy(logits, labels)


def make_train_step(objective: Objective = ce_objective):
  """A pure `train_step(state, batch) -> (state, metrics)` minimising `objective`.

  `batch` is a dict with `x` (images) and `y` (integer labels); metrics are the batch `loss`
  and `accuracy`. The model runs in training mode (BatchNorm uses and updates batch statistics).
  """

  def train_step(state: TrainState, batch):
    def loss_fn(params):
      logits, model_state = state.apply_fn(params, state.model_state, batch["x"], True)
      return objective(logits, batch["y"], params, state.step), (logits, model_state)

    (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}
    return state.replace(step=state.step + 1, params=params, model_state=model_state,
                         opt_state=opt_state), metrics

  return train_step


train_step = make_train_step()


def data_parallel_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis 'data' over `devices` (default: all local devices)."""
  devices = jax.local_devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("data",))


def model_parallel_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis 'model' over `devices` (default: all devices of all processes, so
  under `jax.distributed` it spans every host)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("model",))


def is_model_mesh(mesh: Optional[Mesh]) -> bool:
  """True for a mesh that splits models (axis 'model'), False for a data mesh or None."""
  if mesh is None:
    return False
  if tuple(mesh.axis_names) not in (("data",), ("model",)):
    raise ValueError(f"a training mesh has the single axis 'data' (batches split) or 'model' "
                     f"(seeds split), got axes {tuple(mesh.axis_names)}; use "
                     "data_parallel_mesh() or model_parallel_mesh()")
  return mesh.axis_names == ("model",)


def replicate(tree, mesh: Optional[Mesh]):
  """Place a pytree fully replicated on every device of `mesh` (no-op without a mesh)."""
  return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, P()))


def shard_models(tree, mesh: Mesh):
  """Place a stacked pytree with its leading model axis split over the 'model' axis of `mesh`."""
  return jax.device_put(tree, NamedSharding(mesh, P("model")))


def model_mesh_of(state: TrainState) -> Optional[Mesh]:
  """The mesh whose 'model' axis a stacked state's models are split over, else None."""
  sharding = getattr(state.step, "sharding", None)
  if (isinstance(sharding, NamedSharding) and sharding.mesh.axis_names == ("model",)
      and tuple(sharding.spec)[:1] == ("model",)):
    return sharding.mesh
  return None


def check_models(n: Optional[int], mesh: Mesh) -> None:
  """A model mesh needs a stacked state whose N models split evenly over its devices."""
  if n is None:
    raise ValueError("a model-parallel mesh needs a stacked state (one key per model); pass "
                     "a data_parallel_mesh() or no mesh for a single model")
  if n % mesh.size:
    raise ValueError(f"{n} models are not divisible by the {mesh.size} devices of the "
                     f"model-parallel mesh; use a multiple of {mesh.size} seeds")


def resolve_model_axis(strategy: str) -> str:
  """How a stacked state's model axis is mapped inside one compiled program.

  `vmap`: `jax.vmap` (batched kernels; the right choice on GPU/TPU). `unrolled`: a Python loop
  over the models inside the jitted function (N copies of the step in one program). On XLA:CPU
  a vmapped convolution becomes a grouped convolution that runs about 2x slower per example
  than N separate ones (docs/platform.md), so `auto` picks `unrolled` on CPU, `vmap` elsewhere.
  """
  if strategy not in MODEL_AXIS_STRATEGIES:
    raise ValueError(f"unknown model_axis strategy '{strategy}'; choose one of "
                     f"{', '.join(MODEL_AXIS_STRATEGIES)}")
  if strategy == "auto":
    return "unrolled" if jax.default_backend() == "cpu" else "vmap"
  return strategy


def over_models(fn, strategy: str = "vmap", in_axes=0):
  """Map `fn` over the leading model axis of its arguments (`in_axes` as in `jax.vmap`)."""
  if resolve_model_axis(strategy) == "vmap":
    return jax.vmap(fn, in_axes=in_axes)

  def unrolled(*args):
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    n = next(jax.tree_util.tree_leaves(a)[0].shape[0] for a, ax in zip(args, axes)
             if ax is not None)
    outs = [fn(*(a if ax is None else jax.tree_util.tree_map(lambda l: l[i], a)
                 for a, ax in zip(args, axes))) for i in range(n)]
    return jax.tree_util.tree_map(lambda *o: jnp.stack(o), *outs)

  return unrolled


def _epoch_permutation(key, n):
  return jax.random.permutation(key, n)


@functools.partial(jax.jit, static_argnames=("n", "stacked"))
def epoch_permutations(key, epoch, *, n: int, stacked: bool):
  """The data order of `epoch`: a permutation of n from `fold_in(key, epoch)` (per model)."""
  fn = lambda k: _epoch_permutation(jax.random.fold_in(k, epoch), n)
  return jax.vmap(fn)(key) if stacked else fn(key)


@jax.jit
def take_rows(subsets, positions):
  """`subsets[..., positions]` row-wise: model k's rows `subsets[k][positions[k]]` (`[N, m]`
  each, or `[m]` for one model); maps an order over a subset's positions to dataset rows."""
  return jnp.take_along_axis(jnp.asarray(subsets), positions, axis=-1)


def epoch_order(key, epoch, *, n: int, stacked: bool, subsets=None):
  """The rows of `epoch` in training order: `epoch_permutations` over the `n` rows, or with
  `subsets` (`[N, m]` per-model row indices, m = n) over each model's own rows, so model k
  visits `subsets[k][perm_k]`, the order a single run on `x[subsets[k]]` with key k takes."""
  perm = epoch_permutations(key, epoch, n=n, stacked=stacked)
  return perm if subsets is None else take_rows(subsets, perm)


def check_subsets(subsets, num_examples: int, models: Optional[int]):
  """Per-model training subsets as an int32 array: `[N, m]` row indices into the training set
  (one row per model of a stacked state; `[m]` for a single model), every index in range.
  Every model has the same m, so all take the same number of steps (`data.shadows` builds
  equal-size subsets; `subsets_from_mask` pads unequal ones)."""
  sub = np.asarray(subsets)
  if not np.issubdtype(sub.dtype, np.integer):
    raise ValueError(f"subsets must be integer row indices, got dtype {sub.dtype}; pass "
                     "index arrays (data.shadows.subsets_from_mask converts a keep mask)")
  want = 1 if models is None else 2
  if sub.ndim != want or (models is not None and sub.shape[0] != models):
    shape = "[m]" if models is None else f"[{models}, m]"
    raise ValueError(f"subsets must have shape {shape} (one row of indices per model), got "
                     f"{sub.shape}")
  if sub.shape[-1] == 0 or sub.min() < 0 or sub.max() >= num_examples:
    raise ValueError(f"subsets must be non-empty indices in [0, {num_examples}), got "
                     f"range [{sub.min() if sub.size else '-'}, "
                     f"{sub.max() if sub.size else '-'}]")
  return jnp.asarray(sub, jnp.int32)


@functools.lru_cache(maxsize=None)
def _compiled_epoch_step(train_step_fn, batch_size: int, stacked: bool, mesh: Optional[Mesh],
                         model_axis: str):
  """Jitted step that slices batch `i` of `perm`, gathers it from on-device data and trains."""
  step = over_models(train_step_fn, model_axis) if stacked else train_step_fn
  by_model = is_model_mesh(mesh)

  def run(state, x, y, perm, i):
    idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size, axis=-1)
    batch = {"x": x[idx], "y": y[idx]}
    if mesh is not None and not by_model:
      spec = P(None, "data") if stacked else P("data")
      batch = jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, spec))
    return step(state, batch)

  if by_model:  # each device runs `step` on its own models: state and order split, data whole
    run = jax.shard_map(run, mesh=mesh, in_specs=(P("model"), P(), P(), P("model"), P()),
                        out_specs=P("model"))
  return jax.jit(run, donate_argnums=(0,))


def check_batch_size(batch_size: int, num_examples: int, mesh: Optional[Mesh] = None) -> int:
  """Steps per epoch; clear errors for batch sizes that cannot work."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be > 0, got {batch_size}")
  if batch_size > num_examples:
    raise ValueError(f"batch_size {batch_size} exceeds the {num_examples} training examples; "
                     "lower --config.train.batch_size")
  if mesh is not None and not is_model_mesh(mesh) and batch_size % mesh.size:
    raise ValueError(f"batch_size {batch_size} is not divisible by the {mesh.size} devices of the "
                     "data-parallel mesh; use a multiple of the device count")
  return num_examples // batch_size


def train_epoch(state: TrainState, x, y, *, key, epoch: int, batch_size: int,
                mesh: Optional[Mesh] = None, train_step_fn=train_step, model_axis: str = "auto",
                subsets=None, model_chunk: int = 0):
  """One epoch over (x, y) in the order drawn for `epoch`; returns (state, mean step metrics).

  `subsets` (`[N, m]` row indices, checked by `check_subsets`): model k trains on its own rows
  `x[subsets[k]]` only, m / batch_size steps for every model.

  `model_chunk` = c > 0 (a stacked state of N > c models, no model mesh): the epoch runs the
  models c at a time, each chunk through all its steps before the next (one compiled program
  for every full chunk), then joins them; the models are independent, so the result is the
  same (up to float fusion). On a CPU whose cache does not hold N models' weights this is
  faster than one step of all N (docs/platform.md).

  The step is a jitted function called from a Python loop (on XLA:CPU convolutions inside
  `lax.scan` run 20-30x slower, see docs/platform.md). Metrics stay on device until the end;
  with a model mesh they are then replicated, so that every host can read them.
  """
  n = int(x.shape[0]) if subsets is None else int(subsets.shape[-1])
  steps = check_batch_size(batch_size, n, mesh)
  stacked = num_models(state) is not None
  perm = epoch_order(key, epoch, n=n, stacked=stacked, subsets=subsets)
  step = _compiled_epoch_step(train_step_fn, batch_size, stacked, mesh,
                              resolve_model_axis(model_axis))

  def run(st, order):
    totals = None
    for i in range(steps):
      st, metrics = step(st, x, y, order, i)
      totals = metrics if totals is None else jax.tree_util.tree_map(jnp.add, totals, metrics)
    return st, totals

  n_models = num_models(state)
  if model_chunk and stacked and n_models > model_chunk and not is_model_mesh(mesh):
    parts = [run(jax.tree_util.tree_map(lambda a: a[s:s + model_chunk], state),
                 perm[s:s + model_chunk]) for s in range(0, n_models, model_chunk)]
    join = lambda *a: jnp.concatenate(a)
    state = jax.tree_util.tree_map(join, *[p[0] for p in parts])
    totals = jax.tree_util.tree_map(join, *[p[1] for p in parts])
  else:
    state, totals = run(state, perm)
  means = jax.tree_util.tree_map(lambda t: t / steps, totals)
  return state, replicate(means, mesh) if is_model_mesh(mesh) else means


def fit(state: TrainState, x, y, *, key, epochs: int, batch_size: int, start_epoch: int = 0,
        mesh: Optional[Mesh] = None, train_step_fn=train_step, model_axis: str = "auto",
        on_epoch_end: Optional[Callable[[int, TrainState, dict], None]] = None,
        subsets=None, model_chunk: int = 0) -> TrainState:
  """Train for epochs `start_epoch .. epochs-1` and return the final state.

  Args:
    state: a single or stacked `TrainState` (see `create_train_state`).
    x, y: the training set, kept on device (replicated over `mesh` if given).
    key: the data-order key (one per model for a stacked state).
    epochs: total number of epochs; `start_epoch` > 0 resumes.
    batch_size: global batch size (split over the devices of a data mesh; whole on each device
      of a model mesh).
    mesh: optional `data_parallel_mesh()` (batches split, state replicated) or
      `model_parallel_mesh()` (the N models of a stacked state split, N divisible by its size;
      the returned state stays split, see `shard_models`).
    train_step_fn: a pure step (default cross-entropy `train_step`).
    model_axis: for a stacked state, `vmap`, `unrolled` or `auto` (see `resolve_model_axis`).
    on_epoch_end: called as `on_epoch_end(epoch, state, metrics)` after each epoch (1-based epoch
      count of completed epochs), e.g. to log and checkpoint.
    subsets: optional per-model training subsets, `[N, m]` row indices into (x, y) (`[m]` for a
      single model): model k trains only on `x[subsets[k]]`, in the order a single run on those
      rows with key k takes (`epoch_order`), every model m / batch_size steps per epoch; one
      compiled program for all N (shadow models, `55-shadow-eval.md`).
    model_chunk: train a stacked state's models c at a time within each epoch (`train_epoch`);
      0 = all at once.
  """
  x, y = replicate(jnp.asarray(x), mesh), replicate(jnp.asarray(y), mesh)
  if subsets is not None:
    subsets = check_subsets(subsets, int(x.shape[0]), num_models(state))
    subsets = shard_models(subsets, mesh) if is_model_mesh(mesh) else replicate(subsets, mesh)
  # Steps donate their input state; copy once so the caller's `state` stays valid.
  state = jax.tree_util.tree_map(jnp.copy, state)
  if is_model_mesh(mesh):
    check_models(num_models(state), mesh)
    state = shard_models(state, mesh)
  else:
    state = replicate(state, mesh)
  for epoch in range(start_epoch, epochs):
    state, metrics = train_epoch(state, x, y, key=key, epoch=epoch, batch_size=batch_size,
                                 mesh=mesh, train_step_fn=train_step_fn, model_axis=model_axis,
                                 subsets=subsets, model_chunk=model_chunk)
    if on_epoch_end is not None:
      on_epoch_end(epoch + 1, state, metrics)
  return state


@functools.lru_cache(maxsize=None)
def _compiled_predict(apply_fn, stacked: bool, model_axis: str, mesh: Optional[Mesh],
                      per_model_rows: bool = False):
  fn = lambda params, model_state, x: apply_fn(params, model_state, x, False)[0]
  x_axis = 0 if per_model_rows else None
  fn = over_models(fn, model_axis, in_axes=(0, 0, x_axis)) if stacked else fn
  if mesh is not None:  # a model-split state: each device predicts with its own models
    fn = jax.shard_map(fn, mesh=mesh, in_specs=(P("model"), P("model"),
                                                P("model") if per_model_rows else P()),
                       out_specs=P("model"))
  return jax.jit(fn)


def predict(state: TrainState, x, *, batch_size: int = 1000, model_axis: str = "auto",
            index=None) -> jax.Array:
  """Logits in inference mode, `[n, C]` (or `[N, n, C]` for a stacked state).

  The last batch is padded to `batch_size` so one compiled program serves every batch. For a
  state split over a model mesh (`fit` with `model_parallel_mesh()`), each device computes the
  logits of its own models; the result is then replicated, so that every host can read it.
  `index` (`[N, n]`, stacked states): model k's logits on its own rows `x[index[k]]`.
  """
  stacked = num_models(state) is not None
  if index is not None and not stacked:
    raise ValueError("predict with a per-model index needs a stacked state")
  mesh = model_mesh_of(state) if stacked else None
  fn = _compiled_predict(state.apply_fn, stacked, resolve_model_axis(model_axis), mesh,
                         index is not None)
  x = jnp.asarray(x)
  n = x.shape[0] if index is None else int(index.shape[-1])
  if index is not None:
    index = jnp.asarray(index, jnp.int32)
  outs = []
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    pad = batch_size - (stop - start) if n > batch_size else 0
    if index is None:
      chunk = x[start:stop]
      if pad:
        chunk = jnp.concatenate([chunk, jnp.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    else:  # each model's rows of this chunk of positions (padding repeats the last position)
      pos = jnp.arange(start, stop + pad).clip(max=n - 1)
      chunk = x[index[:, pos]]
    out = fn(state.params, state.model_state, chunk)
    outs.append(out[..., :out.shape[-2] - pad, :] if pad else out)
  return replicate(jnp.concatenate(outs, axis=-2), mesh)


def evaluate(state: TrainState, x, y, *, batch_size: int = 1000, model_axis: str = "auto"
             ) -> dict:
  """Mean cross-entropy `loss` and `accuracy` on (x, y) in inference mode.

  Values are scalars for a single state and `[N]` arrays for a stacked one.
  """
  logits = predict(state, x, batch_size=batch_size, model_axis=model_axis)
  y = jnp.asarray(y)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.broadcast_to(
      y, logits.shape[:-1]))
  return {"loss": losses.mean(-1), "accuracy": (jnp.argmax(logits, -1) == y).mean(-1)}


def unstack(state: TrainState, i: int) -> TrainState:
  """Model i of a stacked state."""
  return jax.tree_util.tree_map(lambda a: a[i], state)


def stack(states) -> TrainState:
  """Stack single states (same structure) along a new leading model axis."""
  return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)
