"""Exceptions of Agent Lightning. Every message names the offending value and the fix."""

from __future__ import annotations

__all__ = [
    "AgentLightningError",
    "AttemptNotFoundError",
    "DuplicateComponentError",
    "NotFoundError",
    "PluginLoadError",
    "ResourcesNotFoundError",
    "RolloutNotFoundError",
    "SpansEvictedError",
    "StoreUnavailableError",
    "UnknownComponentError",
    "WorkerNotFoundError",
]


class AgentLightningError(Exception):
    """Base of the framework's own errors."""

    def __str__(self) -> str:
        # KeyError-derived subclasses would otherwise print their message quoted.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UnknownComponentError(AgentLightningError, LookupError):
    """A component name no installed plugin registers."""


class DuplicateComponentError(AgentLightningError, ValueError):
    """Two plugins register the same component name."""


class PluginLoadError(AgentLightningError, ImportError):
    """A plugin's entry point failed to import."""


class NotFoundError(AgentLightningError, KeyError):
    """An id the store does not know."""


class RolloutNotFoundError(NotFoundError):
    pass


class AttemptNotFoundError(NotFoundError):
    pass


class ResourcesNotFoundError(NotFoundError):
    pass


class WorkerNotFoundError(NotFoundError):
    pass


class SpansEvictedError(AgentLightningError, LookupError):
    """Spans of a finished rollout were evicted to stay within the store's memory budget."""


class StoreUnavailableError(AgentLightningError, ConnectionError):
    """The store could not be reached (after retries, where they apply)."""
