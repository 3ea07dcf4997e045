"""The Retrain component: the routed model, its base model, and their serving exports."""

from components.retrain.component import Retrain

__all__ = ["Retrain"]
