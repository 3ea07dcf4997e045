"""RawExampleGen: raw Criteo, Avazu or generic CTR files -> validated, split tf.Examples."""

from components.example_gen.component import RawExampleGen

__all__ = ["RawExampleGen"]
