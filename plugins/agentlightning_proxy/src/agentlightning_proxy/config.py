"""Upstreams and the proxy's configuration file (TOML, or YAML with PyYAML installed).

A file for ``agl proxy serve --config FILE``::

    port = 4800
    store = "http://127.0.0.1:4747"     # a store server's URL, or a store spec ("sqlite", {...})
    token_env = "AGL_PROXY_TOKEN"       # clients must send this token (optional)
    capture_tokens = true
    metrics = true                      # GET /metrics (Prometheus); false turns it off

    [upstreams.vllm-a]
    base_url = "http://10.0.0.5:8000/v1"
    api_key_env = "VLLM_API_KEY"
    models = ["qwen2.5-7b"]
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = ["ProxyConfig", "Upstream", "load_config"]


def _url(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(
            f"Upstream base_url must be an http(s) URL like 'http://127.0.0.1:8000/v1', got {value!r}"
        )


def _header_value(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (
        not isinstance(value, str) or any(c in value for c in "\r\n\0") or not value.isascii()
    ):
        raise ValueError(
            f"Upstream {attribute.name} must be an ASCII string without line breaks (it is sent as an HTTP header); "
            "check the environment variable it was read from"
        )


def _no_trailing_slash(value: Any) -> Any:
    return value.rstrip("/") if isinstance(value, str) else value


def _models(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value or not all(isinstance(m, str) and m for m in value):
        raise ValueError(
            f"Upstream models must be a non-empty list of model names ('*' serves any), got {value!r}"
        )
    return tuple(value)


@attrs.define(frozen=True)
class Upstream:
    """A model server the proxy forwards to.

    :param name: how spans and errors name it.
    :param base_url: the server's OpenAI base URL, ending in ``/v1``.
    :param models: model names it serves; ``"*"`` serves any name.
    :param api_key: sent upstream as ``Authorization: Bearer`` (``x-api-key`` on ``/v1/messages``);
        None forwards the client's own key.
    """

    name: str
    base_url: str = attrs.field(validator=_url, converter=_no_trailing_slash)
    models: tuple[str, ...] = attrs.field(default=("*",), converter=_models)
    api_key: str | None = attrs.field(default=None, repr=False, validator=_header_value)

    def serves(self, model: str) -> bool:
        return "*" in self.models or model in self.models


@attrs.define
class ProxyConfig:
    """What ``agl proxy serve`` runs: upstreams plus the :class:`~agentlightning_proxy.LLMProxy` options."""

    upstreams: list[Upstream]
    store: Any = None
    host: str = "127.0.0.1"
    port: int = 4800
    token: str | None = attrs.field(default=None, repr=False)
    capture_tokens: bool = False
    max_retries: int = 2
    metrics: bool = True


_TOP_KEYS = {"upstreams", "store", "host", "port", "token_env", "capture_tokens", "max_retries", "metrics"}
_UPSTREAM_KEYS = {"base_url", "models", "api_key_env"}


def _env(name: Any, where: str, env: Mapping[str, str]) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} must name an environment variable, got {name!r}")
    value = env.get(name)
    if not value:
        raise ValueError(
            f"{where} names the environment variable {name!r}, which is not set; export it first"
        )
    return value


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ImportError(
                f"{path} is YAML, which needs PyYAML: pip install 'agentlightning-proxy[yaml]' (or use TOML)"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if path.suffix != ".toml":
        raise ValueError(f"Proxy config {path} must end in .toml, .yaml or .yml, got {path.suffix!r}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ProxyConfig:
    """Read a proxy configuration file; errors name the file, the key and the fix."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Proxy config {file} does not exist; see docs/proxy.md for an example")
    env = os.environ if env is None else env
    data = _parse(file)
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a table of settings, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{file}: unknown setting(s) {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    raw = data.get("upstreams")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(
            f"{file} needs an [upstreams.NAME] table with base_url and models for each model server"
        )
    upstreams = []
    for name, table in raw.items():
        where = f"{file}: upstreams.{name}"
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table with base_url and models")
        bad = set(table) - _UPSTREAM_KEYS
        if bad:
            raise ValueError(f"{where}: unknown key(s) {sorted(bad)}; known: {sorted(_UPSTREAM_KEYS)}")
        if "base_url" not in table:
            raise ValueError(f"{where} needs base_url, e.g. 'http://127.0.0.1:8000/v1'")
        try:
            upstreams.append(
                Upstream(
                    name=str(name),
                    base_url=table["base_url"],
                    models=table.get("models", ("*",)),
                    api_key=_env(table.get("api_key_env"), f"{where}.api_key_env", env),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    metrics = data.get("metrics", True)
    if not isinstance(metrics, bool):
        raise ValueError(f"{file}: metrics must be true or false, got {metrics!r}")
    port = data.get("port", 4800)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"{file}: port must be an integer in 0..65535, got {port!r}")
    return ProxyConfig(
        upstreams=upstreams,
        store=data.get("store"),
        host=str(data.get("host", "127.0.0.1")),
        port=port,
        token=_env(data.get("token_env"), f"{file}: token_env", env),
        capture_tokens=bool(data.get("capture_tokens", False)),
        max_retries=int(data.get("max_retries", 2)),
        metrics=metrics,
    )
