"""iHAS-Keras: instance-wise hierarchical architecture search for CTR models (CIKM 2023)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ihas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
