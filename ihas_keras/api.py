"""The documented entry point: `build_model`, and the stages from search to the routed model."""

from collections.abc import Mapping

from ihas_keras.models.search import SearchModel


def build_model(feature_spec: Mapping[str, int], embedding_dim: int = 16, backbone: str = "dnn",
                hidden_units=(16, 8), compile: bool = True, **options) -> SearchModel:
    """The iHAS search model for FEATURE_SPEC, {field name: vocabulary size}, in field order
    (for example `ihas_keras.data.vocabulary_sizes(transform_dir, fmt)`).

    Paper defaults: width 16 per field, an MLP (16, 8) DNN backbone (or "fm", "wide_deep",
    "deepfm", "dcn_v2"), instance-wise gates with polarization (lam 1.2, weight 1e-4,
    temperature 0.1). OPTIONS go to `SearchModel` (for example `instance_wise=False`,
    `polarization=False`, `regularization_weight`, `seed`). With COMPILE (the default) it comes
    compiled with the paper's optimizers, ready for `ihas_keras.search(model, train, val)` or
    `model.fit`.
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


def load_model(path: str):
    """A saved `.keras` file of this library (search, routed, recommender or baseline model):
    `keras.saving.load_model` with every `ihas` class registered first. A search model needs
    `compile()` again before training."""
    import keras

    import ihas_keras.models  # noqa: F401  (registers the models; they import the layers)

    return keras.saving.load_model(path)
