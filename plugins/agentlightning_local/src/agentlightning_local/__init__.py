"""Agent Lightning's embedded model: a real LLM behind an OpenAI-compatible API, offline."""

from __future__ import annotations

from agentlightning_local.cache import CACHE_ENV, cache_dir, cache_size, ensure_model_file
from agentlightning_local.catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueModel, get_model
from agentlightning_local.errors import (
    LocalModelError,
    ModelHashError,
    ModelNotInstalledError,
    NotEnoughResourcesError,
    PortInUseError,
    ServerStartError,
)
from agentlightning_local.server import LocalModel, default_threads

__version__ = "0.1.0"
__all__ = [
    "CACHE_ENV",
    "CATALOGUE",
    "DEFAULT_MODEL",
    "CatalogueModel",
    "LocalModel",
    "LocalModelError",
    "ModelHashError",
    "ModelNotInstalledError",
    "NotEnoughResourcesError",
    "PortInUseError",
    "ServerStartError",
    "__version__",
    "cache_dir",
    "cache_size",
    "default_threads",
    "ensure_model_file",
    "get_model",
]
