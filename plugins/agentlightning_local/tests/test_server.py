"""The real server with the real ``openai`` client: chat, streaming, JSON mode, determinism,
tool calls as text, clean stops (exit, Ctrl+C, SIGTERM of the parent) and start-up errors."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import openai
import pytest

from agentlightning_core import LLM
from agentlightning_local import LocalModel, NotEnoughResourcesError, PortInUseError, ServerStartError

TEST_MODEL = "qwen2.5-coder-0.5b"
AGL = str(Path(sys.executable).with_name("agl"))
PROMPTS = [
    "Name one prime number between 10 and 20.",
    "Write a Python expression that reverses the string s.",
    "Is a ticket saying 'I was charged twice' about billing or shipping? One word.",
]


def wait_process_gone(pid: int, timeout: float = 60.0) -> bool:
    """Whether process ``pid`` (not necessarily our child) ends within ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def port_refuses(url: str) -> bool:
    """Whether nothing listens any more at ``url``."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def client(llm: LLM) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm.get_base_url(), api_key=llm.api_key, max_retries=0, timeout=300)


def answers(llm: LLM) -> list[str]:
    out = []
    for prompt in PROMPTS:
        response = client(llm).chat.completions.create(
            model=llm.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=24,
            **llm.sampling_parameters,
        )
        out.append(response.choices[0].message.content or "")
    return out


# --- one shared server ----------------------------------------------------------------------


@pytest.mark.slow
def test_resource_and_chat(local_model: LocalModel) -> None:
    llm = local_model.llm
    assert llm.model == TEST_MODEL and llm.endpoint == f"{local_model.url}/v1"
    assert llm.endpoint.startswith("http://127.0.0.1:")
    assert llm.sampling_parameters == {"temperature": 0.0, "seed": 42}
    assert LLM.from_json(llm.to_json()) == llm  # usable in initial_resources and the store
    response = client(llm).chat.completions.create(
        model=llm.model,
        messages=[{"role": "user", "content": "What is 2 + 3? Answer with the number only."}],
        max_tokens=8,
        temperature=0,
    )
    assert "5" in (response.choices[0].message.content or "")
    assert response.model == TEST_MODEL
    assert response.usage is not None and response.usage.completion_tokens > 0


@pytest.mark.slow
def test_streaming(local_model: LocalModel) -> None:
    stream = client(local_model.llm).chat.completions.create(
        model=TEST_MODEL,
        messages=[{"role": "user", "content": "Count from 1 to 5, separated by commas."}],
        max_tokens=20,
        temperature=0,
        stream=True,
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # token by token, not one block
    assert "1, 2, 3, 4, 5" in "".join(pieces)


@pytest.mark.slow
def test_json_mode(local_model: LocalModel) -> None:
    response = client(local_model.llm).chat.completions.create(
        model=TEST_MODEL,
        messages=[{"role": "user", "content": "Give a JSON object with keys name and age for Bob, aged 30."}],
        response_format={"type": "json_object"},
        max_tokens=40,
        temperature=0,
    )
    data = json.loads(response.choices[0].message.content or "")
    assert data == {"name": "Bob", "age": 30}


@pytest.mark.slow
def test_tool_calls_arrive_as_json_text(local_model: LocalModel) -> None:
    """Documented limitation (README): the Qwen models write a tool call as JSON text in
    ``content``; the server does not return ``tool_calls``. Agents parse the text."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather of a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    response = client(local_model.llm).chat.completions.create(
        model=TEST_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris? Use the tool."}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
        max_tokens=60,
        temperature=0,
    )
    message = response.choices[0].message
    assert message.tool_calls is None
    call = json.loads(message.content or "")
    assert call == {"name": "get_weather", "arguments": {"city": "Paris"}}


# --- fresh servers ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_same_answers_after_a_restart_and_clean_exit(
    local_model: LocalModel, model_cache: Path
) -> None:
    first = answers(local_model.llm)
    assert all(first)
    second_server = LocalModel(TEST_MODEL, n_ctx=2048, cache_dir=model_cache)
    async with second_server as llm:
        assert llm.endpoint != local_model.llm.endpoint
        pid, url = second_server.pid, second_server.url
        assert pid is not None and url is not None
        second = answers(llm)
    assert second == first  # temperature 0 + seed: identical across two server starts
    assert wait_process_gone(pid) and port_refuses(url)
    assert second_server.pid is None and not second_server.running()


def worker_children() -> list[int]:
    """Our child processes that run the model server."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(status.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = status.with_name("cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"agentlightning_local._worker" in cmdline:
            found.append(int(status.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.anyio
async def test_cancelled_async_start_leaves_no_server(model_cache: Path) -> None:
    before = worker_children()  # the shared server of this module may be running
    model = LocalModel(TEST_MODEL, n_ctx=1024, cache_dir=model_cache)
    with anyio.move_on_after(0.2) as scope:
        async with model:  # the start runs to its end in a thread, then the scope's cancel lands
            await anyio.sleep(60)
            pytest.fail("the scope should have been cancelled")
    assert scope.cancelled_caught
    assert model.pid is None and worker_children() == before


PARENT = """
import json, sys
from agentlightning_local import LocalModel
model = LocalModel("qwen2.5-coder-0.5b", n_ctx=1024, cache_dir=sys.argv[1])
model.start()
print(json.dumps({"pid": model.pid, "url": model.url}), flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_server_stops_when_its_parent_gets_sigterm(model_cache: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(model_cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        started = json.loads(parent.stdout.readline())
        assert not port_refuses(started["url"])
        parent.send_signal(signal.SIGTERM)  # default action: no Python cleanup runs
        assert parent.wait(timeout=60) == -signal.SIGTERM
        assert wait_process_gone(started["pid"]), "the server outlived its parent"
        assert port_refuses(started["url"])
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.slow
def test_agl_local_serve_stops_on_ctrl_c(model_cache: Path) -> None:
    serve = subprocess.Popen(
        [AGL, "local", "serve", "--model", TEST_MODEL, "--n-ctx", "1024"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AGL_LOCAL_CACHE": str(model_cache)},
    )
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert line.startswith(f"Serving {TEST_MODEL} at http://127.0.0.1:"), line
        endpoint = line.split(" at ")[1].split()[0]
        pid = int(line.split("pid ")[1].split(",")[0])
        llm = LLM(endpoint=endpoint, model=TEST_MODEL, api_key="x")
        assert client(llm).models.list().data[0].id == TEST_MODEL
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=60)
        assert serve.returncode == 0, err
        assert out.strip() == "Stopped."
        assert wait_process_gone(pid) and port_refuses(endpoint)
    finally:
        serve.kill()
        serve.wait()


# --- start-up errors ----------------------------------------------------------------------


def test_port_in_use_is_named(model_cache: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        model = LocalModel(TEST_MODEL, port=port, cache_dir=model_cache)
        with pytest.raises(PortInUseError, match=f"Port {port} on 127.0.0.1 is already in use"):
            model.start()
        assert model.pid is None


def test_server_exiting_during_start_shows_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(4096))
    model = LocalModel(broken)
    assert model.name == "broken"
    with pytest.raises(ServerStartError) as info:
        model.start()
    message = str(info.value)
    assert "exited with code 3 while starting" in message
    assert "Its last log lines:" in message and "failed to load model" in message
    assert model.pid is None and model.log_path is None


def test_not_a_gguf_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(Exception, match=r"notes\.gguf is not a GGUF file"):
        LocalModel(text).start()
    with pytest.raises(Exception, match=r"missing\.gguf does not exist"):
        LocalModel(tmp_path / "missing.gguf").start()


def test_not_enough_memory_is_explained(model_cache: Path) -> None:
    model = LocalModel(TEST_MODEL, n_ctx=50_000_000, cache_dir=model_cache)  # ~3 TB of KV cache
    with pytest.raises(NotEnoughResourcesError, match=r"Not enough memory to serve qwen2\.5-coder-0\.5b: "):
        model.start()
    assert model.pid is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threads must be >= 1"):
        LocalModel(TEST_MODEL, threads=0)
    with pytest.raises(ValueError, match=r"port must be in 0\.\.65535"):
        LocalModel(TEST_MODEL, port=70000)
    with pytest.raises(
        LookupError, match=r"Unknown local model .gpt-9.\. Catalogue models: qwen2\.5-coder-1\.5b"
    ):
        LocalModel("gpt-9")
