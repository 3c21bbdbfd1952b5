"""``agl proxy serve --config FILE`` and the configuration file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import openai
import pytest

from agentlightning_core import InMemoryLightningStore, LightningStoreServer
from agentlightning_core.testing.openai_server import OpenAIServer
from agentlightning_proxy import Upstream, load_config

AGL = str(Path(sys.executable).with_name("agl"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_yaml_configs_give_the_same_settings(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "p.toml",
        'port = 0\nstore = "http://127.0.0.1:4747"\ntoken_env = "T"\ncapture_tokens = true\n'
        '[upstreams.a]\nbase_url = "http://127.0.0.1:8000/v1/"\napi_key_env = "K"\nmodels = ["qwen"]\n',
    )
    yaml = write(
        tmp_path,
        "p.yaml",
        "port: 0\nstore: http://127.0.0.1:4747\ntoken_env: T\ncapture_tokens: true\n"
        "upstreams:\n  a:\n    base_url: http://127.0.0.1:8000/v1/\n    api_key_env: K\n    models: [qwen]\n",
    )
    env = {"T": "proxy-token", "K": "upstream-key"}
    one, two = load_config(toml, env), load_config(yaml, env)
    assert one == two
    assert one.upstreams == [Upstream("a", "http://127.0.0.1:8000/v1", ("qwen",), api_key="upstream-key")]
    assert one.token == "proxy-token" and one.capture_tokens and one.store == "http://127.0.0.1:4747"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 1\n", "needs an [upstreams.NAME] table"),
        ('[upstreams.a]\nbase_url = "ftp://x"\n', "upstreams.a: Upstream base_url must be an http(s) URL"),
        (
            '[upstreams.a]\nbase_url = "http://x/v1"\napi_key_env = "MISSING_KEY"\n',
            "'MISSING_KEY', which is not set",
        ),
        ('[upstreams.a]\nbase_url = "http://x/v1"\nmodel = "m"\n', "unknown key(s) ['model']"),
        ('prot = 1\n[upstreams.a]\nbase_url = "http://x/v1"\n', "unknown setting(s) ['prot']"),
        ('port = 99999\n[upstreams.a]\nbase_url = "http://x/v1"\n', "port must be an integer in 0..65535"),
        ("port = [", "is not valid TOML"),
    ],
)
def test_config_errors_name_the_file_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ValueError) as info:
        load_config(path, {})
    assert message in str(info.value) and str(path) in str(info.value)


def test_an_api_key_that_cannot_be_a_header_is_refused(tmp_path: Path) -> None:
    """The key is sent as an HTTP header: a stray newline (a file read into the variable) would
    split the upstream request."""
    path = write(tmp_path, "key.toml", '[upstreams.a]\nbase_url = "http://x/v1"\napi_key_env = "K"\n')
    for key in ("sk-123\n", "sk-\u00e9"):
        with pytest.raises(ValueError, match="ASCII string without line breaks") as info:
            load_config(path, {"K": key})
        assert "upstreams.a" in str(info.value) and str(path) in str(info.value)


def test_agl_proxy_serve_reports_a_missing_config(tmp_path: Path) -> None:
    out = subprocess.run(
        [AGL, "proxy", "serve", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "nope.toml does not exist" in out.stderr


@pytest.mark.anyio
async def test_agl_proxy_serve_records_into_a_store_server_and_stops_on_sigterm(tmp_path: Path) -> None:
    with OpenAIServer() as upstream:
        async with InMemoryLightningStore() as store, LightningStoreServer(store, port=0) as store_server:
            attempt = await store.start_rollout({"task": 1})
            config = write(
                tmp_path,
                "proxy.toml",
                f'store = "{store_server.url}"\nport = 0\n[upstreams.scripted]\nbase_url = "{upstream.base_url}"\nmodels = ["m"]\n',
            )
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            async with await anyio.open_process(
                [AGL, "proxy", "serve", "--config", str(config)], env=env
            ) as process:
                assert process.stdout is not None
                line = b""
                with anyio.fail_after(60):
                    while not line.endswith(b"\n"):
                        line += await process.stdout.receive(1)
                assert line.startswith(b"LLM proxy on http://127.0.0.1:") and b" for m " in line
                base = line.split()[3].decode()[: -len("/v1")]
                url = f"{base}/rollout/{attempt.rollout_id}/attempt/{attempt.attempt.attempt_id}/v1"
                async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as client:
                    answer = await client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "via cli"}]
                    )
                assert answer.choices[0].message.content == "via cli"
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    assert await process.wait() == 0
            (span,) = await store.query_spans(attempt.rollout_id)
            assert span.name == "chat m" and span.attributes["agentlightning.proxy.upstream"] == "scripted"
