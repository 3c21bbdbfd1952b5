"""The model server's own process: ``python -m agentlightning_local._worker CONFIG_JSON``.

It loads the model into llama.cpp's server (xllamacpp, in this process), writes one JSON
line ``{"url": ...}`` on its standard output when the server listens, and stops when its
standard input closes (the parent stopped it or died) or on SIGTERM/SIGINT. Everything
llama.cpp logs goes to standard error, which the parent keeps in a log file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any, NoReturn


def _serve(config: dict[str, Any], ready: Any) -> NoReturn:
    import xllamacpp

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def watch_stdin() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    params = xllamacpp.CommonParams()
    params.model.path = config["model_path"]
    params.model_alias = {config["alias"]}
    params.hostnames = [config["host"]]
    params.port = config["port"]
    params.n_ctx = config["n_ctx"]
    params.n_parallel = 1
    params.cpuparams.n_threads = config["threads"]
    params.cpuparams_batch.n_threads = config["threads"]
    params.sampling.seed = config["seed"]
    params.fit_params = False  # no dry-run load to fit GPU memory: this is a CPU server
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        print(f"agentlightning_local: the server did not start: {exc}", file=sys.stderr, flush=True)
        os._exit(3)  # not sys.exit: the stdin watcher thread must not be joined at shutdown
    ready.write(json.dumps({"url": server.listening_address}) + "\n")
    ready.flush()
    stop.wait()
    # Exit at once: stopping the server object waits for an in-flight request, which never
    # ends when the parent that sent it is gone. The OS frees the model and the socket.
    sys.stderr.flush()
    os._exit(0)


def main() -> NoReturn:
    config = json.loads(sys.argv[1])
    # llama.cpp may print to stdout too: keep the real stdout for the ready line only.
    ready = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _serve(config, ready)


if __name__ == "__main__":
    main()
