"""Keras layers of iHAS and its recommenders, each registered as serializable under "ihas"."""

from ihas_keras.layers.backbone import Backbone
from ihas_keras.layers.embedding import FieldEmbedding
from ihas_keras.layers.gate import BernoulliGate
from ihas_keras.layers.interactions import CrossNetV2, FMInteraction
from ihas_keras.layers.mlp import MLP
from ihas_keras.layers.regularizer import GateRegularizer
from ihas_keras.layers.router import CentroidRouter
from ihas_keras.layers.threshold import ThresholdSearcher, histogram_threshold
from ihas_keras.layers.towers import SharedTowers

__all__ = [
    "MLP", "Backbone", "BernoulliGate", "CentroidRouter", "CrossNetV2", "FMInteraction",
    "FieldEmbedding", "GateRegularizer", "SharedTowers", "ThresholdSearcher",
    "histogram_threshold",
]  # fmt: skip
