"""The Evaluate component: routed model vs. base model through their serving signatures."""

from components.evaluate.component import Evaluate

__all__ = ["Evaluate"]
