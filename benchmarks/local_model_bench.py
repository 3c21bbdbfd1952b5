"""The embedded model's speed: start-up, answer time and memory, for each installed catalogue model.

For each model: cold start (assemble the GGUF from its packages into an empty cache, verify
its SHA-256, start the server, wait until it answers) and warm start (cache present); then,
with 1 and 2 threads, seconds per 50-token answer and generated tokens/s over ``--answers``
requests through the real ``openai`` client, and the server process's peak resident memory.

Reference figures from issue 12 (2 cores, idle): 0.5-1.1 s per classification answer (0.5B)
and 1.2-2.7 s (1.5B) with 1 thread; 2 threads about 1.7x faster than 1 when the machine is
idle, slower when another process takes a core. Wall-clock figures move with the load
average, printed beside them.

    python benchmarks/local_model_bench.py [--models NAME ...] [--answers 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import openai

from agentlightning_local import CATALOGUE, LocalModel

PROMPT = "Explain in a few sentences what a hash table is and when to use one."


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_answers(model: LocalModel, answers: int) -> dict[str, float]:
    llm = model.llm
    client = openai.OpenAI(base_url=llm.endpoint, api_key=llm.api_key, timeout=600)
    tokens, elapsed = 0, 0.0
    for i in range(answers):
        start = time.perf_counter()
        response = client.chat.completions.create(
            model=llm.model,
            messages=[{"role": "user", "content": f"{PROMPT} (variant {i})"}],
            max_tokens=50,
            temperature=0,
            seed=42,
        )
        elapsed += time.perf_counter() - start
        assert response.usage is not None
        tokens += response.usage.completion_tokens
    return {"s_per_50_tokens": elapsed / tokens * 50, "tokens_per_s": tokens / elapsed}


def bench_model(name: str, answers: int, cache: Path) -> dict[str, object]:
    result: dict[str, object] = {"model": name}
    start = time.perf_counter()
    cold = LocalModel(name, threads=2, cache_dir=cache)
    with cold:
        result["cold_start_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    with LocalModel(name, threads=2, cache_dir=cache):
        result["warm_start_s"] = round(time.perf_counter() - start, 2)
    peak = 0.0
    for threads in (1, 2):
        model = LocalModel(name, threads=threads, cache_dir=cache)
        with model:
            assert model.pid is not None
            figures = measure_answers(model, answers)
            peak = max(peak, peak_rss_mib(model.pid))
        result[f"threads_{threads}"] = {k: round(v, 2) for k, v in figures.items()}
    result["peak_rss_mib"] = round(peak)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=[m.name for m in CATALOGUE.values() if m.is_installed()]
    )
    parser.add_argument("--answers", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix="agl-bench-cache-") as cache:
            result = bench_model(name, args.answers, Path(cache))
        one, two = result["threads_1"], result["threads_2"]
        assert isinstance(one, dict) and isinstance(two, dict)
        result["speedup_2_threads"] = round(two["tokens_per_s"] / one["tokens_per_s"], 2)
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result), flush=True)
    print("reference (issue 12, idle 2 cores): 2 threads ~1.7x faster than 1", flush=True)


if __name__ == "__main__":
    main()
