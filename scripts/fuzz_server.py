"""Fuzz the store server from its own OpenAPI description with schemathesis: no 5xx allowed.

Starts ``agl store serve --store memory --port 0`` and runs ``schemathesis run`` against its
``/openapi.json`` with positive and negative (schema-violating) examples of every operation.
Exits with schemathesis's status (0: no failed check). Usage::

    python scripts/fuzz_server.py [--max-examples 50] [--checks not_a_server_error] [--seed N]

By default only the "no server error" check runs: 4xx answers to invalid input are the
point. ``--checks all`` adds schemathesis's stricter conformance checks.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys

from agentlightning_core.remote._config import TOKEN_ENV


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=50, help="examples per operation (default 50)")
    parser.add_argument(
        "--checks", default="not_a_server_error", help="schemathesis checks (default: no 5xx)"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    schemathesis = shutil.which("schemathesis") or shutil.which("st")
    if schemathesis is None:
        print("schemathesis is not installed: pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentlightning_core.cli",
            "store",
            "serve",
            "--store",
            "memory",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: ""},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        found = re.search(r"http://[\d.]+:\d+", line)
        if found is None:
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 2
        url = found.group(0)
        command = [
            schemathesis,
            "run",
            f"{url}/openapi.json",
            "--checks",
            args.checks,
            "--max-examples",
            str(args.max_examples),
            "--mode",
            "all",
            # The stateful phase crashes inside schemathesis 4.32 while inferring links between
            # these operations (AttributeError in merge_request_body), so it is left out.
            "--phases",
            "examples,coverage,fuzzing",
            # OTLP takes protobuf, which schemathesis cannot generate; tests cover it with the SDK.
            "--exclude-path",
            "/v1/traces",
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        print("$", " ".join(command), flush=True)
        return subprocess.run(command).returncode
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
