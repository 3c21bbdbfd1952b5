"""End-to-end rollout throughput: N trivial rollouts through ``Trainer.dev``.

The agent returns a constant reward (recorded as a reward span by the tracer), so the
figure measures the runtime itself: queue, runner, tracer, store. Runs with 1, 2 and 4
runners and prints rollouts/s for each. Previous generation: 14.6 (1 runner), 15.8 (2).
Target: >= 1,000 rollouts/s (shm); >= 300 with 2 runner processes (cs).

``rollouts_per_s`` is end to end (``Trainer.dev`` wall time, including starting and
stopping runner processes for ``cs``); ``steady_per_s`` counts from the first finished
rollout to the last, i.e. without start-up and shutdown.

``--resources`` gives the trainer one prompt template and an agent that takes it, so each
rollout has resources to get (runners fetch each version once and cache it).

``--strategy ray`` (agentlightning-ray) starts one local Ray cluster (2 CPUs, no dashboard)
before measuring, so the figures count what a run on a running cluster costs: starting the
actors, serving the store, the rollouts. Each runner actor asks for a quarter CPU so four fit.
It measures ``cs`` with the same runner counts in the same invocation and prints each ratio
next to the target: Ray end to end within 30% of ``cs`` (ratio >= 0.70).

    python benchmarks/e2e_bench.py [--strategy shm|cs|ray] [--n 2000] [--tracer otel] [--sync] [--resources]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

from agentlightning_core import PromptTemplate, Trainer, rollout


@rollout
async def constant_agent(task: object) -> float:
    return 1.0


@rollout
def constant_sync_agent(task: object) -> float:
    return 1.0


@rollout
async def prompted_agent(task: object, prompt_template: PromptTemplate) -> float:
    return 1.0


RAY_TARGET_RATIO = 0.70
"""Ray end to end within 30% of ``cs`` for the same runner count."""


def measure(
    n: int, n_runners: int, strategy: str, tracer: str, sync: bool, resources: bool = False
) -> tuple[float, float]:
    agent = prompted_agent if resources else constant_sync_agent if sync else constant_agent
    trainer = Trainer(
        strategy={"type": "ray", "num_cpus": 0.25} if strategy == "ray" else strategy,
        tracer=tracer,
        n_runners=n_runners,
        progress=False,
        initial_resources={"prompt_template": PromptTemplate("Answer {question}")} if resources else None,
    )
    dataset = list(range(n))
    start = time.perf_counter()
    algorithm = trainer.dev(agent, dataset)
    elapsed = time.perf_counter() - start
    results = getattr(algorithm, "results", [])
    expected = None if tracer == "noop" else 1.0  # the noop tracer records no reward span
    ok = sum(1 for r in results if r.rollout.status == "succeeded" and r.reward == expected)
    if ok != n:
        raise SystemExit(f"only {ok} of {n} rollouts succeeded with reward {expected}")
    ends = sorted(r.rollout.end_time or 0.0 for r in results)
    steady = (n - 1) / (ends[-1] - ends[0]) if n > 1 and ends[-1] > ends[0] else float("nan")
    return n / elapsed, steady


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strategy", default="shm")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--tracer", default="otel")
    parser.add_argument("--runners", type=int, nargs="+", help="runner counts (default 1 2 4; ray: 2 4)")
    parser.add_argument("--sync", action="store_true", help="use a sync agent (runs in a worker thread)")
    parser.add_argument(
        "--resources", action="store_true", help="agents get a prompt template from the store"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runners = args.runners or ([2, 4] if args.strategy == "ray" else [1, 2, 4])
    if args.strategy == "ray":
        _start_ray()
    # warm-up: imports, plugin loading
    measure(min(args.n, 100), 1, args.strategy, args.tracer, args.sync, args.resources)
    figures: dict[str, float | str] = {"strategy": args.strategy, "load_before": _load()}
    for r in runners:
        suffix = f"{r}_runner{'s' if r > 1 else ''}"
        total, steady = measure(args.n, r, args.strategy, args.tracer, args.sync, args.resources)
        figures[f"rollouts_per_s_{suffix}"] = round(total, 1)
        figures[f"steady_per_s_{suffix}"] = round(steady, 1)
        if args.strategy == "ray":
            cs_total, _ = measure(args.n, r, "cs", args.tracer, args.sync, args.resources)
            figures[f"cs_rollouts_per_s_{suffix}"] = round(cs_total, 1)
            ratio = total / cs_total
            verdict = "met" if ratio >= RAY_TARGET_RATIO else "MISSED"
            figures[f"ray_vs_cs_{suffix}"] = f"{ratio:.2f} (target >= {RAY_TARGET_RATIO:.2f}: {verdict})"
    figures["load_after"] = _load()
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


def _start_ray() -> None:
    """One local cluster for every measurement (the strategy reuses a connected Ray)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# The cs strategy runs the agent in spawned processes, which re-import this script as
# __mp_main__: everything above is importable, and only this block runs once.
if __name__ == "__main__":
    main()
