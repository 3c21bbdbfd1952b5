"""``agl proxy serve --config FILE [--host HOST] [--port PORT] [--no-metrics]``."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

__all__ = ["add_commands", "serve"]

logger = logging.getLogger(__name__)


def _store(spec: Any) -> Any:
    """The store a config names: a store server's URL, or a store spec (name, dict, ``pkg.mod:Class``)."""
    if spec is None:
        return None
    if isinstance(spec, str) and spec.startswith(("http://", "https://")):
        from agentlightning_core import LightningStoreClient

        return LightningStoreClient(spec)
    from agentlightning_core import resolve_component

    return resolve_component("store", spec)


async def serve(
    config_path: str, host: str | None = None, port: int | None = None, metrics: bool = True
) -> None:
    """Run the proxy a config file describes until SIGINT or SIGTERM (``metrics=False``: no
    ``/metrics``, whatever the file says)."""
    import anyio

    from agentlightning_proxy.config import load_config
    from agentlightning_proxy.proxy import LLMProxy

    config = load_config(config_path)
    store = _store(config.store)
    proxy = LLMProxy(
        config.upstreams,
        store,
        host if host is not None else config.host,
        port if port is not None else config.port,
        config.token,
        capture_tokens=config.capture_tokens,
        max_retries=config.max_retries,
        metrics=config.metrics and metrics,
    )
    if store is not None:
        await store.start()
    try:
        async with proxy:
            models = ", ".join(proxy.models)
            print(f"LLM proxy on {proxy.base_url} for {models} (Ctrl-C to stop)", flush=True)
            if store is None:
                print("No store in the config: calls are forwarded but not recorded", flush=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logger.info("Received %s: stopping the proxy", signal.Signals(signum).name)
                    return
    finally:
        if store is not None:
            await store.aclose()


def _serve(args: argparse.Namespace) -> int:
    import anyio

    try:
        import uvloop  # noqa: F401  (part of the core's server extra on Linux and macOS)

        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    anyio.run(
        serve, args.config, args.host, args.port, args.metrics, backend="asyncio", backend_options=options
    )
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("proxy", help="the LLM proxy that records every model call into the store")

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(handler=usage)
    group = p.add_subparsers(dest="proxy_command", metavar="SUBCOMMAND")
    s = group.add_parser("serve", help="serve the proxy a config file describes (see docs/proxy.md)")
    s.add_argument("--config", required=True, help="TOML or YAML file: upstreams, models, store, token_env")
    s.add_argument("--host", help="address to bind (default: the config's, else 127.0.0.1)")
    s.add_argument(
        "--port", type=int, help="port to bind; 0 picks a free one (default: the config's, else 4800)"
    )
    s.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="do not serve Prometheus metrics at /metrics (served by default, behind the token)",
    )
    s.set_defaults(handler=_serve)
