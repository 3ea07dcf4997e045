"""The Search component: the iHAS search model trained on Transform's output."""

from components.search.component import Search

__all__ = ["Search"]
