"""iHAS-Keras: instance-wise hierarchical architecture search for CTR models (CIKM 2023).

    model = ihas_keras.build_model({"C1": 1000, "C2": 50, ...})
    ihas_keras.search(model, train, validation)          # pretrain, then bi-level search
    plan = ihas_keras.fit_clusters(model, train, num_clusters=2)
    routed = ihas_keras.retrain(model, plan, train, validation)  # K = 1: one Recommender
    routed.save("routed.keras")
    routed = keras.saving.load_model("routed.keras")   # or ihas_keras.load_model

Importing the package registers every Keras class of the library (layers and models, under the
package name "ihas"), so `keras.saving.load_model` finds them in any process that imported it.
The library imports nothing from the applications built on it (`components`, `pipeline`,
`serving`, `experiments`, `ihas_cli`); `make lint` checks that.
"""

from importlib import metadata as _metadata

from ihas_keras import distribute, layers, models, schedule
from ihas_keras.api import build_model, load_model
from ihas_keras.cluster import ClusterPlan, fit_clusters
from ihas_keras.errors import BadInputError
from ihas_keras.models import Recommender, RoutedModel, SearchModel
from ihas_keras.retraining import choose_clusters, retrain
from ihas_keras.training import search

try:
    __version__ = _metadata.version("ihas")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "BadInputError", "ClusterPlan", "Recommender", "RoutedModel", "SearchModel", "__version__",
    "build_model", "choose_clusters", "distribute", "fit_clusters", "layers", "load_model",
    "models", "retrain", "schedule", "search",
]  # fmt: skip
