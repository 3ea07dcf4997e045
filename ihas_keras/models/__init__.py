"""The Keras models: the search model, a (per-cluster) recommender, the routed model, and the
field-selection baselines AdaFS and AutoField."""

from ihas_keras.models.adafs import AdaFS
from ihas_keras.models.autofield import AutoField
from ihas_keras.models.recommender import Recommender
from ihas_keras.models.routed import RoutedModel
from ihas_keras.models.search import SearchModel

__all__ = ["AdaFS", "AutoField", "Recommender", "RoutedModel", "SearchModel"]
