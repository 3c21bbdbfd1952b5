"""Time and resident memory of ``import agentlightning_core`` in a fresh interpreter.

Target (issue 2): under 250 ms and 60 MiB on a 2-core machine. Prints one line per figure;
``--json`` prints a JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_PROBE = r"""
import resource, sys, time
t0 = time.perf_counter()
import agentlightning_core
elapsed = time.perf_counter() - t0
heavy = sorted(m for m in ("opentelemetry.sdk", "aiohttp", "uvicorn", "openai", "sqlite3") if m in sys.modules)
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, ",".join(heavy))
"""


def measure(runs: int) -> dict[str, object]:
    times, rss = [], []
    heavy = ""
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True
        ).stdout
        t, r, heavy = [*out.split(), ""][:3]
        times.append(float(t) * 1000)
        rss.append(int(r) / 1024)
    return {
        "import_ms_median": round(statistics.median(times), 1),
        "import_ms_max": round(max(times), 1),
        "max_rss_mib": round(max(rss), 1),
        "heavy_modules_loaded": heavy or "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.runs)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
