"""The module the TFX Transform component loads: the shared `preprocessing_fn`, configured by the
component's `custom_config` ({"format", "schema", "frequency_threshold"})."""

from ihas_keras.data.formats import get_format
from ihas_keras.data.preprocess import make_preprocessing_fn


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    fmt = get_format(custom_config["format"], custom_config.get("schema") or None)
    threshold = int(custom_config.get("frequency_threshold", 10))
    return make_preprocessing_fn(fmt, threshold)(inputs)
