"""Mixed precision as a scoped setting: Keras's global dtype policy for one block of work."""

import contextlib
from collections.abc import Iterator

import keras

from ihas_keras import defaults


@contextlib.contextmanager
def dtype_policy(name: str = defaults.DTYPE_POLICY) -> Iterator[None]:
    """Sets Keras's dtype policy to NAME while the block runs (models built in it take it).

    The gate probabilities, masks, routing points and every model's probability stay float32
    under a mixed policy; the policy before the block is restored after it.

    Args:
        name: a Keras dtype policy: "float32", "mixed_float16" or "mixed_bfloat16" (for GPUs
            and TPUs).

    Raises:
        ValueError: NAME is not a Keras dtype policy.
    """
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(name)
    except ValueError as error:
        raise ValueError(f"dtype policy {name!r} is not one Keras knows: {error}") from None
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
