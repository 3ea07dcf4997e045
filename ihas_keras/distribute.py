"""The strategy setting: a `tf.distribute` strategy from its name, built in one place.

    strategy = ihas_keras.distribute.strategy("mirrored")
    with strategy.scope():                       # build and compile the models in the scope
        model = ihas_keras.build_model(sizes)
    ihas_keras.search(model, train, validation)  # fit runs through the model's strategy

Names (`STRATEGIES`; the default is `defaults.STRATEGY`):

- "default": TensorFlow's default strategy, what Keras uses outside any scope (one device).
- "one_device": `OneDeviceStrategy` on the first GPU, or the CPU where there is none.
- "mirrored": `MirroredStrategy` over every local GPU, or, where there is none, every logical
  CPU device (one unless the process split its CPU with
  `tf.config.set_logical_device_configuration`, as the tests do).
- "multi_worker": `MultiWorkerMirroredStrategy`, the cluster read from `TF_CONFIG`; every
  worker runs the same program. Only the chief writes outputs (`is_chief`).

"mirrored" and "multi_worker" install the Keras workarounds of `ihas_keras.distribute_fixes`
first (Keras 3.15 fails without them).

"parameter_server" is refused: Keras 3's `fit` does not support `ParameterServerStrategy`
(keras-team/keras#18624).
"""

import json
import os

import tensorflow as tf

from ihas_keras import defaults, distribute_fixes

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")
UNSUPPORTED = {
    "parameter_server": "ParameterServerStrategy is not supported by Keras 3's fit "
                        "(keras-team/keras#18624); use multi_worker (synchronous data "
                        "parallelism over TF_CONFIG's workers) instead",
}


def check_name(name: str, setting: str = "strategy") -> str:
    """NAME if it names a strategy this project builds; otherwise a one-line error.

    Args:
        name: the strategy's name (`STRATEGIES`).
        setting: where NAME was given (a flag, an environment variable, an execution
            property), named in the error.

    Returns:
        NAME.

    Raises:
        ValueError: NAME is not one of `STRATEGIES`, naming SETTING and the allowed names
            (and, for "parameter_server", why it is not supported).
    """
    if name in STRATEGIES:
        return name
    if name in UNSUPPORTED:
        raise ValueError(f"{setting}: {name!r} is not supported: {UNSUPPORTED[name]}")
    raise ValueError(f"{setting}: unknown tf.distribute strategy {name!r}; allowed: "
                     f"{', '.join(STRATEGIES)}")


def _local_devices() -> list[str]:
    """Every local GPU, or where there is none every logical CPU device, by name."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


def strategy(name: str = defaults.STRATEGY, setting: str = "strategy") -> tf.distribute.Strategy:
    """The `tf.distribute` strategy NAME (`STRATEGIES`; see the module's docstring).

    "multi_worker" must be built before TensorFlow runs anything else in the process, once per
    process (TensorFlow's own rule), with `TF_CONFIG` set on every worker.

    Args:
        name: the strategy's name.
        setting: where NAME was given, named in errors.

    Returns:
        The strategy.

    Raises:
        ValueError: NAME is not one of `STRATEGIES` (`check_name`), or "multi_worker" without
            a `TF_CONFIG` cluster.
    """
    check_name(name, setting)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(_local_devices()[0])
    if name == "mirrored":
        distribute_fixes.apply()
        return tf.distribute.MirroredStrategy(_local_devices())
    if not json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster"):
        raise ValueError(f"{setting}: multi_worker needs TF_CONFIG, the cluster and this "
                         "worker's task, on every worker (see the README, Scale-out)")
    distribute_fixes.apply()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(distribution: tf.distribute.Strategy) -> bool:
    """Whether this process writes the outputs: False only on the non-chief workers of a
    multi-worker cluster (the chief is task "chief", or "worker" 0 where there is none).

    Args:
        distribution: the strategy the models train under.

    Returns:
        TensorFlow's `should_checkpoint` of the strategy (True but on non-chief workers).
    """
    return bool(distribution.extended.should_checkpoint)
