"""The dashboard: read-only HTML pages over a store (rollouts, traces, resources, workers, rewards).

``agl dashboard --store SPEC`` serves it alone; ``agl store serve`` serves it at ``/`` beside
the API. Pages are rendered on the server (Jinja2, the core's ``jinja`` extra) with inline
SVG charts; no Node toolchain. See docs/dashboard.md.
"""

from __future__ import annotations

from agentlightning_core.dashboard._app import PREFIX, DashboardApp
from agentlightning_core.dashboard._index import STEP_KEY
from agentlightning_core.dashboard._serve import DashboardServer, run_dashboard_until_signal

__all__ = ["PREFIX", "STEP_KEY", "DashboardApp", "DashboardServer", "run_dashboard_until_signal"]
