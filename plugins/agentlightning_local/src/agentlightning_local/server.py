"""``LocalModel``: an embedded llama.cpp server in a child process, handed out as an ``LLM`` resource."""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

from agentlightning_core import LLM
from agentlightning_local.cache import ensure_model_file
from agentlightning_local.catalogue import DEFAULT_MODEL, CatalogueModel, get_model
from agentlightning_local.errors import (
    LocalModelError,
    NotEnoughResourcesError,
    PortInUseError,
    ServerStartError,
)

__all__ = ["LocalModel", "default_threads"]

logger = logging.getLogger(__name__)

_LOG_TAIL_LINES = 20
_STOP_TIMEOUT = 15.0
_MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    """One thread per CPU this process may use, at most 8.

    Measured on 2 cores: 2 threads answer about 1.7x faster than 1 on an idle machine, and
    slower than 1 when another busy process takes a core; pass ``threads=1`` then.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_DEFAULT_THREADS))


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_needed(model_size: int, n_ctx: int) -> int:
    """A generous estimate of the server's resident memory: weights, KV cache and buffers."""
    return model_size + 256 * 2**20 + n_ctx * 64 * 1024


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"Port {port} on {host} is already in use ({exc.strerror}); choose another port, "
                "or port=0 to pick a free one"
            ) from None


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as log:
            return "".join(deque(log, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


class LocalModel:
    """A real model behind an OpenAI-compatible API on ``host``, for as long as the context lasts.

    ``model`` is a catalogue name (see ``agl local models``) or the path of any ``.gguf``
    file. A catalogue model is assembled once into the cache folder and verified by SHA-256.
    Entering the context (``with`` or ``async with``) starts the server in a child process,
    waits until it answers and returns an :class:`~agentlightning_core.LLM` whose endpoint
    ends in ``/v1``; leaving it stops the server. The child also stops by itself when this
    process dies (its standard input closes), so no server outlives its owner.

    Sampling defaults in the resource are temperature 0 and ``seed``: with them, two starts
    give the same answers to the same requests.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | CatalogueModel = DEFAULT_MODEL,
        threads: int | None = None,
        n_ctx: int = 4096,
        seed: int = 42,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 600.0,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None (one per CPU), got {threads}")
        if n_ctx < 256:
            raise ValueError(f"n_ctx must be >= 256 tokens, got {n_ctx}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535 (0 picks a free one), got {port}")
        self.catalogue_model: CatalogueModel | None
        if isinstance(model, CatalogueModel):
            self.catalogue_model = model
        elif isinstance(model, str) and not model.endswith(".gguf") and os.sep not in model:
            self.catalogue_model = get_model(model)
        else:
            self.catalogue_model = None
        self._gguf = None if self.catalogue_model is not None else Path(model)  # type: ignore[arg-type]
        self.name = self.catalogue_model.name if self.catalogue_model else Path(model).stem  # type: ignore[arg-type]
        self.threads = threads or default_threads()
        self.n_ctx = n_ctx
        self.seed = seed
        self.host = host
        self.port = port
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.start_timeout = start_timeout
        self.url: str | None = None
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # --- public API --------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def llm(self) -> LLM:
        """The running server as an ``LLM`` resource."""
        if self.url is None:
            raise LocalModelError(f"LocalModel {self.name!r} is not running; enter its context first")
        return LLM(
            endpoint=f"{self.url}/v1",
            model=self.name,
            sampling_parameters={"temperature": 0.0, "seed": self.seed},
            api_key="agl-local",  # the server checks no key; openai clients need one
        )

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines the server logged (llama.cpp's own log)."""
        return _tail(self.log_path, lines) if self.log_path is not None else "(no log)"

    def model_path(self) -> Path:
        """The verified GGUF file to load (assembling a catalogue model into the cache first)."""
        if self.catalogue_model is not None:
            return ensure_model_file(self.catalogue_model, self.cache_dir)
        assert self._gguf is not None
        if not self._gguf.is_file():
            raise LocalModelError(
                f"Model file {self._gguf} does not exist; give an existing .gguf file or a catalogue name"
            )
        with open(self._gguf, "rb") as head:
            if head.read(4) != b"GGUF":
                raise LocalModelError(f"{self._gguf} is not a GGUF file (it does not start with 'GGUF')")
        return self._gguf

    def start(self) -> LLM:
        """Start the server and wait until it answers; returns the ``LLM`` resource."""
        if self._process is not None:
            raise LocalModelError(f"LocalModel {self.name!r} is already running at {self.url}")
        path = self.model_path()
        self._check_memory(path)
        _check_port_free(self.host, self.port)
        config = {
            "model_path": str(path),
            "alias": self.name,
            "host": self.host,
            "port": self.port,
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "seed": self.seed,
        }
        fd, log_name = tempfile.mkstemp(prefix=f"agl-local-{self.name}-", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agentlightning_local._worker", json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # Ctrl+C reaches us, and we stop the server in order
            )
        try:
            assert self._process.stdout is not None
            self.url = self._wait_ready(self._process, self._process.stdout)
            self._check_answers(self.url)
        except BaseException:
            self.stop()
            raise
        logger.info("Local model %s serving at %s (pid %d)", self.name, self.url, self._process.pid)
        return self.llm

    def stop(self) -> None:
        """Stop the server and wait for its process to end (idempotent)."""
        process, self._process = self._process, None
        self.url = None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("Local model server (pid %d) ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> LLM:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LLM:
        import anyio

        try:
            return await anyio.to_thread.run_sync(self.start)
        except BaseException:  # cancelled while the thread was starting it: do not leak the server
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.stop)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import anyio

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    def __repr__(self) -> str:
        state = f"running at {self.url}" if self.url else "stopped"
        return f"LocalModel({self.name!r}, threads={self.threads}, n_ctx={self.n_ctx}, {state})"

    # --- internals ---------------------------------------------------------------------

    def _check_memory(self, path: Path) -> None:
        available = _available_memory()
        needed = memory_needed(path.stat().st_size, self.n_ctx)
        if available is not None and available < needed:
            raise NotEnoughResourcesError(
                f"Not enough memory to serve {self.name}: {available / 2**20:.0f} MiB available, "
                f"about {needed / 2**20:.0f} MiB needed (n_ctx={self.n_ctx}). Stop other programs, "
                "choose a smaller model (agl local models) or a smaller n_ctx."
            )

    def _wait_ready(self, process: subprocess.Popen[bytes], stdout: IO[bytes]) -> str:
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerStartError(
                        f"The {self.name} server did not listen within {self.start_timeout:.0f} s. "
                        f"Its last log lines:\n{self.log_tail()}"
                    )
                if selector.select(timeout=min(remaining, 1.0)):
                    line = stdout.readline()
                    if line:
                        url = str(json.loads(line)["url"]).rstrip("/")
                        return url
                    process.wait(timeout=_STOP_TIMEOUT)  # EOF: the process is exiting
                if process.poll() is not None:
                    tail = self.log_tail()
                    if "couldn't bind" in tail:
                        raise PortInUseError(
                            f"The {self.name} server could not bind {self.host}:{self.port}; choose "
                            f"another port or port=0. Its last log lines:\n{tail}"
                        )
                    code = process.returncode
                    how = (
                        f"was killed by {signal.Signals(-code).name}"
                        if code < 0
                        else f"exited with code {code}"
                    )
                    raise ServerStartError(
                        f"The {self.name} server {how} while starting. Its last log lines:\n{tail}"
                    )

    def _check_answers(self, url: str) -> None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
                if response.status == 200:
                    return
                status: object = response.status
        except (urllib.error.URLError, OSError) as exc:
            status = exc
        raise ServerStartError(
            f"The {self.name} server listens at {url} but /health did not answer 200 ({status}). "
            f"Its last log lines:\n{self.log_tail()}"
        )

    def __del__(self) -> None:
        if getattr(self, "_process", None) is not None:
            self.stop()
