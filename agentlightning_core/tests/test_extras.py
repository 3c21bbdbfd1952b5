"""The ``server`` extra holds what a serving store uses, and nothing that only ``uvicorn[standard]`` adds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from importlib import metadata

DROPPED = ("websockets", "watchfiles", "dotenv", "yaml")
"""What ``uvicorn[standard]`` adds beyond the loop and the parser: websockets, reload, .env, YAML."""

SERVE_ONE_REQUEST = f"DROPPED = {DROPPED!r}\n" + textwrap.dedent(
    """
    import json, sys
    for name in DROPPED:  # as if not installed: importing them raises ImportError
        sys.modules[name] = None
    import anyio
    from agentlightning_core.remote.client import LightningStoreClient
    from agentlightning_core.remote._config import event_loop_options
    from agentlightning_core.remote.server import LightningStoreServer
    from agentlightning_core.store.memory import InMemoryLightningStore

    async def main() -> None:
        async with LightningStoreServer(InMemoryLightningStore(), "127.0.0.1", 0) as server:
            async with LightningStoreClient(server.url) as client:
                await client.enqueue_rollout({"q": 1})

    anyio.run(main, backend_options=event_loop_options())
    print(json.dumps(sorted(name for name in sys.modules if "." not in name)))
    """
)


def server_extra() -> set[str]:
    """Distribution names the ``server`` extra of the installed core requires."""
    names = set()
    for req in metadata.requires("agentlightning-core") or []:
        if re.search(r"extra\s*==\s*['\"]server['\"]", req):
            names.add(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower())
    return names


def test_the_server_extra_names_uvicorn_and_the_loop_and_parser_it_uses() -> None:
    assert server_extra() >= {"uvicorn", "uvloop", "httptools"}
    requires = " ".join(metadata.requires("agentlightning-core") or [])
    assert "uvicorn[standard]" not in requires


def test_a_store_serves_on_uvloop_and_httptools_without_the_dropped_packages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_REQUEST], check=True, capture_output=True, text=True, timeout=120
    )
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert {"uvicorn", "uvloop", "httptools", "orjson"} <= loaded
