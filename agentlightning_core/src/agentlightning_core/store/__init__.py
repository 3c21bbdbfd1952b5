"""The store: the control plane of rollouts, attempts, spans and resources."""

from agentlightning_core.store.base import UNSET, EnqueueRequest, LightningStore, PaginatedResult, Unset

__all__ = ["UNSET", "EnqueueRequest", "LightningStore", "PaginatedResult", "Unset"]
