"""End-to-end rollout throughput: N trivial rollouts through ``Trainer.dev``.

The agent returns a constant reward (recorded as a reward span by the tracer), so the
figure measures the runtime itself: queue, runner, tracer, store. Runs with 1, 2 and 4
runners and prints rollouts/s for each. Previous generation: 14.6 (1 runner), 15.8 (2).
Target: >= 1,000 rollouts/s.

    python benchmarks/e2e_bench.py [--strategy shm] [--n 2000] [--tracer otel] [--sync]
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from agentlightning_core import Trainer, rollout


@rollout
async def constant_agent(task: object) -> float:
    return 1.0


@rollout
def constant_sync_agent(task: object) -> float:
    return 1.0


def measure(n: int, n_runners: int, strategy: str, tracer: str, sync: bool) -> float:
    agent = constant_sync_agent if sync else constant_agent
    trainer = Trainer(strategy=strategy, tracer=tracer, n_runners=n_runners, progress=False)
    dataset = list(range(n))
    start = time.perf_counter()
    algorithm = trainer.dev(agent, dataset)
    elapsed = time.perf_counter() - start
    results = getattr(algorithm, "results", [])
    expected = None if tracer == "noop" else 1.0  # the noop tracer records no reward span
    ok = sum(1 for r in results if r.rollout.status == "succeeded" and r.reward == expected)
    if ok != n:
        raise SystemExit(f"only {ok} of {n} rollouts succeeded with reward {expected}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strategy", default="shm")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--tracer", default="otel")
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--sync", action="store_true", help="use a sync agent (runs in a worker thread)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    measure(min(args.n, 100), 1, args.strategy, args.tracer, args.sync)  # warm-up: imports, plugin loading
    figures = {
        f"rollouts_per_s_{r}_runner{'s' if r > 1 else ''}": round(
            measure(args.n, r, args.strategy, args.tracer, args.sync), 1
        )
        for r in args.runners
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
