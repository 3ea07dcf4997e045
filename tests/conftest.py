"""Fixtures shared by several test modules."""

import pytest

from tests.serving_model import build_served_model


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """A small real routed model exported for serving (see tests/serving_model.py)."""
    return build_served_model(tmp_path_factory.mktemp("served"))
