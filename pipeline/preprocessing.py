"""The module the TFX Transform component loads: the shared `preprocessing_fn`, configured by the
component's `custom_config` ({"format", "schema", "frequency_threshold"})."""

from ihas_keras import defaults
from ihas_keras.data.formats import get_format
from ihas_keras.data.preprocess import make_preprocessing_fn


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """TF Transform's entry point: the format's preprocessing applied to INPUTS.

    Args:
        inputs: the raw feature tensors of a batch.
        custom_config: the Transform component's `custom_config`: "format", "schema" (for
            "generic") and "frequency_threshold".

    Returns:
        {field: int64 id} and the label.
    """
    fmt = get_format(custom_config["format"], custom_config.get("schema") or None)
    threshold = int(custom_config.get("frequency_threshold", defaults.FREQUENCY_THRESHOLD))
    return make_preprocessing_fn(fmt, threshold)(inputs)
