"""The Keras models: the search model, a (per-cluster) recommender and the routed model."""

from ihas_keras.models.recommender import Recommender
from ihas_keras.models.routed import RoutedModel
from ihas_keras.models.search import SearchModel

__all__ = ["Recommender", "RoutedModel", "SearchModel"]
