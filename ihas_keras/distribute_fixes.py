"""Workarounds for two Keras 3 bugs under `tf.distribute` strategies, in this one place.

Measured with Keras 3.15.1 and TensorFlow 2.21 (`tests/test_multi_worker.py`: 2 worker
processes on 127.0.0.1; `tests/test_distribute.py`: `MirroredStrategy` on 2 logical CPUs; both
also tell when upstream fixes each one):

- "symbolic_build", keras-team/keras#20585: before the first step, `fit` and `evaluate` build
  the model symbolically from one batch of the distributed dataset, which Keras first reduces
  across the replicas (`strategy.reduce("MEAN", batch)`) to get one batch of shapes. Under
  `MultiWorkerMirroredStrategy` that fails for any batch that is a structure ("Attempt to
  convert a value ({'a': PerReplica...}) with an unsupported type (<class 'dict'>) to a
  Tensor"); under `MirroredStrategy` it fails whenever that batch does not split evenly over the
  replicas ("Inputs to operation AddN of type AddN must have the same size and shape": a
  validation split of 201 rows, in the Search executor's test). The fix builds from the first
  local replica's part of the batch instead: only its shapes and dtypes are used.
- "metric_reduction" (tensorflow/tensorflow#72388): in multi-worker mode the step's logs are
  reduced with `strategy.reduce("MEAN", value, axis=0)`, which fails for the scalar loss and
  metrics ("Invalid reduction dimension 0 for input with 0 dimensions"). The fix averages
  scalars across the replicas only (`axis=None`), as Keras does on one worker.

`ihas_keras.distribute.strategy("mirrored")` and `("multi_worker")` apply them; nothing else
does. Each leaves Keras's own code in charge where it works: "symbolic_build" changes nothing
for batches that are not distributed, "metric_reduction" nothing outside multi-worker mode.
When a Keras release fixes a bug, the tests fail and say which fix to delete.
"""

import tensorflow as tf
from keras.src.backend.tensorflow import trainer

_KERAS = {"symbolic_build": (trainer.TensorFlowTrainer, "_maybe_symbolic_build",
                             trainer.TensorFlowTrainer._maybe_symbolic_build),
          "metric_reduction": (trainer, "reduce_per_replica", trainer.reduce_per_replica)}


def _multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def _local(value):
    """This worker's first replica's part of a distributed value; other values unchanged."""
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Keras's, but built from the first local replica's part of a distributed batch."""
    if iterator is None or self._distribute_strategy is None:
        return _KERAS["symbolic_build"][2](self, iterator=iterator, data_batch=data_batch)
    for _, _, batches in iterator:
        data_batch = tf.nest.map_structure(_local, next(batches))
        break
    return _KERAS["symbolic_build"][2](self, data_batch=data_batch)


def _reduce_per_replica(values, strategy, reduction):
    """Keras's, but in multi-worker mode scalars are averaged across the replicas only."""
    if reduction not in ("auto", "mean") or not _multi_worker(strategy):
        return _KERAS["metric_reduction"][2](values, strategy, reduction)

    def reduce(value):
        # With one device a worker, a step's outputs are plain tensors (PerReplica with more).
        if getattr(_local(value), "shape", None) is not None and _local(value).shape.rank == 0:
            return strategy.reduce("MEAN", value, axis=None)
        return _KERAS["metric_reduction"][2](value, strategy, reduction)

    return tf.nest.map_structure(reduce, values)


_FIXED = {"symbolic_build": _maybe_symbolic_build, "metric_reduction": _reduce_per_replica}
FIXES = tuple(_FIXED)


def apply(names: tuple[str, ...] = FIXES) -> None:
    """Installs the fixes NAMES (all by default) into Keras; applying one twice is harmless.

    Args:
        names: fixes of `FIXES`.

    Raises:
        KeyError: a name is not one of `FIXES`.
    """
    for name in names:
        owner, attribute, _ = _KERAS[name]
        setattr(owner, attribute, _FIXED[name])


def undo(names: tuple[str, ...] = FIXES) -> None:
    """Puts Keras's own code back for the fixes NAMES (all by default), as to test it.

    Args:
        names: fixes of `FIXES`.

    Raises:
        KeyError: a name is not one of `FIXES`.
    """
    for name in names:
        owner, attribute, original = _KERAS[name]
        setattr(owner, attribute, original)


def applied() -> tuple[str, ...]:
    """The fixes now installed.

    Returns:
        The names of the installed fixes, in `FIXES` order.
    """
    return tuple(name for name in FIXES
                 if getattr(_KERAS[name][0], _KERAS[name][1]) is _FIXED[name])
