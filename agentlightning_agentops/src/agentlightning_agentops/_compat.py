"""The AgentOps release this plugin is tested with, and the check made at ``init``."""

from __future__ import annotations

from importlib import metadata

__all__ = ["TESTED_AGENTOPS_VERSIONS", "AgentOpsVersionError", "check_agentops_version"]

TESTED_AGENTOPS_VERSIONS: tuple[str, ...] = ("0.4.21",)
"""AgentOps releases the plugin is tested with: it binds AgentOps' tracing core, whose internals
change between releases (earlier integrations broke on upgrades)."""


class AgentOpsVersionError(ImportError):
    """agentops is missing, or installed in a release the plugin is not tested with."""


def _plugin_version() -> str:
    try:
        return metadata.version("agentlightning-agentops")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def check_agentops_version(installed: str | None = None) -> str:
    """The installed agentops version; raises :class:`AgentOpsVersionError` naming both versions
    when it is not a tested one (``installed`` defaults to the installed distribution's)."""
    pin = f"pip install 'agentops=={TESTED_AGENTOPS_VERSIONS[-1]}'"
    if installed is None:
        try:
            installed = metadata.version("agentops")
        except metadata.PackageNotFoundError:
            raise AgentOpsVersionError(
                f"The agentops tracer needs agentops {' or '.join(TESTED_AGENTOPS_VERSIONS)}, which is "
                f"not installed. Install it with: {pin}"
            ) from None
    if installed not in TESTED_AGENTOPS_VERSIONS:
        raise AgentOpsVersionError(
            f"agentlightning-agentops {_plugin_version()} is tested with agentops "
            f"{' or '.join(TESTED_AGENTOPS_VERSIONS)}, but agentops {installed} is installed. "
            f"Install the tested release with: {pin}"
        )
    return installed
