"""The documented entry points: `build_model`, and `load_model` for every saved model."""

import zipfile
from collections.abc import Mapping, Sequence

import keras

from ihas_keras import defaults
from ihas_keras.errors import BadInputError
from ihas_keras.models.search import SearchModel


def build_model(feature_spec: Mapping[str, int], embedding_dim: int = defaults.EMBEDDING_DIM,
                backbone: str = defaults.BACKBONE,
                hidden_units: Sequence[int] = defaults.HIDDEN_UNITS, compile: bool = True,
                **options) -> SearchModel:
    """The iHAS search model for a set of fields.

    Paper defaults (`ihas_keras.defaults`): width 16 per field, an MLP (16, 8) DNN backbone,
    instance-wise gates with polarization (lam 1.2, weight 1e-4, temperature 0.1).

    Args:
        feature_spec: {field name: vocabulary size}, in field order (for example
            `ihas_keras.data.transform.vocabulary_sizes(transform_dir, fmt)`).
        embedding_dim: the full width of every field's embedding.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the MLP's layer sizes.
        compile: compile with the paper's optimizers, ready for `ihas_keras.search` or `fit`.
        **options: more `SearchModel` arguments (for example `instance_wise=False`,
            `polarization=False`, `regularization_weight`, `seed`).

    Returns:
        The search model, built (its weights exist) and, with COMPILE, compiled.

    Raises:
        ValueError: FEATURE_SPEC is empty or has a vocabulary size below 1.
    """
    if not feature_spec:
        raise ValueError("build_model: feature_spec is empty; give {field: vocabulary size}")
    bad = {f: v for f, v in feature_spec.items() if int(v) < 1}
    if bad:
        raise ValueError(f"build_model: vocabulary sizes must be >= 1, got {bad}")
    model = SearchModel(list(feature_spec), list(feature_spec.values()), embedding_dim, backbone,
                        hidden_units, **options)
    if compile:
        model.compile()
    return model


def load_model(path: str) -> keras.Model:
    """A saved `.keras` file of this library: search, routed, recommender or baseline model.

    The executors of the TFX components load every model with it. A search or selection model
    needs `compile()` again before training (it has two optimizers).

    Args:
        path: the `.keras` file.

    Returns:
        The model, its classes found through the registration done by importing `ihas_keras`.

    Raises:
        BadInputError: the file is missing or is not a saved Keras model of this library.
    """
    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError, TypeError, zipfile.BadZipFile) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInputError(f"{path}: cannot load the saved model ({reason})") from None
