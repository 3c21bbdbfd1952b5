"""Agent Lightning's ``agentops`` tracer: AgentOps' instrumentors and decorators recording into
the store, offline unless told otherwise. agentops itself is imported at ``init``."""

from agentlightning_agentops._compat import (
    TESTED_AGENTOPS_VERSIONS,
    AgentOpsVersionError,
    check_agentops_version,
)
from agentlightning_agentops._instrumentors import InstrumentorLoadError
from agentlightning_agentops.tracer import AgentOpsExportError, AgentOpsTracer

__all__ = [
    "TESTED_AGENTOPS_VERSIONS",
    "AgentOpsExportError",
    "AgentOpsTracer",
    "AgentOpsVersionError",
    "InstrumentorLoadError",
    "check_agentops_version",
]
