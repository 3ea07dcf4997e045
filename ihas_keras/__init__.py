"""iHAS-Keras: instance-wise hierarchical architecture search for CTR models (CIKM 2023).

    model = ihas_keras.build_model({"C1": 1000, "C2": 50, ...})
    ihas_keras.search(model, train, validation)          # pretrain, then bi-level search
    plan = ihas_keras.fit_clusters(model, train, num_clusters=2)
    routed = ihas_keras.retrain(model, plan, train, validation)
    routed.save("routed.keras")
    routed = ihas_keras.load_model("routed.keras")     # registers the ihas classes, then loads

The names below are imported on first use, so `ihas --version` does not load TensorFlow.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ihas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

_EXPORTS = {
    "build_model": "ihas_keras.api",
    "load_model": "ihas_keras.api",
    "search": "ihas_keras.training",
    "fit_clusters": "ihas_keras.cluster",
    "ClusterPlan": "ihas_keras.cluster",
    "retrain": "ihas_keras.retraining",
    "SearchModel": "ihas_keras.models.search",
    "Recommender": "ihas_keras.models.recommender",
    "RoutedModel": "ihas_keras.models.routed",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ihas_keras' has no attribute {name!r}")
