"""The Cluster component: the cluster plan from the search model's masks."""

from components.cluster.component import Cluster

__all__ = ["Cluster"]
