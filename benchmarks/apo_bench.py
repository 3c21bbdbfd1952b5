"""APO: framework overhead per round with a scripted model, and the main job with the embedded one.

Part 1 (always): APO against the core's scripted OpenAI-compatible server, whose answers
take no time, so the wall time per round is the framework's own (store, runners, tracing,
adapter, bookkeeping). Printed per round: wall seconds, rollouts, optimizer calls, and
the overhead per rollout. Target: the framework's time per round is small next to the
model's (with the embedded 1.5B model a rollout takes 1-3 s; overhead target < 20 ms/rollout).

Part 2 (``--main-job``): runs ``examples/room_selector/room_selector.py`` for each seed and
prints the held-out scores (start vs best), the gain, the wall time and the load average.
Targets: wall time < 600 s per run on 2 cores; mean held-out gain >= 0.25 over 3 seeds.

    python benchmarks/apo_bench.py [--rounds 3] [--main-job --seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from agentlightning_apo import APO
from agentlightning_core import LLM, PromptTemplate, Trainer, rollout
from agentlightning_core.testing.openai_server import OpenAIServer, Reply

ROOT = Path(__file__).resolve().parents[1]
SEED_PROMPT = "Answer {question}."


_CLIENTS: dict[str, openai.OpenAI] = {}


@rollout
def scripted_agent(task: dict[str, Any], llm: LLM, prompt_template: PromptTemplate) -> float:
    url = llm.get_base_url()
    client = _CLIENTS.get(url) or _CLIENTS.setdefault(
        url, openai.OpenAI(base_url=url, api_key="b", max_retries=0)
    )
    reply = client.chat.completions.create(
        model=llm.model,
        messages=[{"role": "system", "content": prompt_template.format(question=task["q"])}],
    )
    return 1.0 if reply.choices[0].message.content == "yes" else 0.0


def scripted(body: dict[str, Any]) -> Reply | str:
    content = str(body["messages"][0]["content"])
    if "PROMPT TEMPLATE ===" in content:
        # each proposal adds one more rule, so every candidate is new and some pass the gate
        n = content.count("Rule")
        return f"<prompt>Answer {{question}}. {' '.join(f'Rule {i}.' for i in range(n // 2 + 1))}</prompt>"
    return "yes" if "Rule" in content and hash(content) % 2 == 0 else "no"


def framework_overhead(rounds: int, runners: int) -> None:
    train = [{"q": f"t{i}"} for i in range(16)]
    val = [{"q": f"v{i}"} for i in range(16)]
    with OpenAIServer(scripted) as server, tempfile.TemporaryDirectory() as tmp:
        apo = APO(beam_rounds=rounds, output_dir=tmp, progress=False)  # the earlier generation's defaults
        trainer = Trainer(
            algorithm=apo,
            adapter="messages",
            n_runners=runners,
            progress=False,
            initial_resources={
                "llm": LLM(endpoint=server.base_url, model="scripted"),
                "prompt_template": PromptTemplate(SEED_PROMPT),
            },
        )
        start = time.perf_counter()
        trainer.fit(scripted_agent, train, val)
        total = time.perf_counter() - start
    previous: dict[str, Any] = {"rollouts": 0, "llm_tokens": 0, "seconds": 0.0}
    print(f"APO with a scripted model (beam 4, branch 4, batch 4/16, {runners} runners):")
    for entry in apo.rounds:
        rollouts = entry["rollouts"] - previous["rollouts"]
        seconds = entry["seconds"] - previous["seconds"]
        per = 1000 * seconds / rollouts if rollouts else 0.0
        print(
            f"  round {entry['round']}: {seconds:6.2f} s, {rollouts:4d} rollouts, "
            f"{per:5.1f} ms per rollout (target < 20 ms; a 1.5B model answer: 1000-3000 ms)"
        )
        previous = entry
    print(
        f"  total {total:.2f} s, {apo.stats.rollouts} rollouts, {apo.stats.llm_calls} optimizer calls, "
        f"{apo.stats.proposals} proposals ({apo.stats.rejected_gate} stopped by the minibatch gate)"
    )


def main_job(seeds: list[int]) -> None:
    results = []
    for seed in seeds:
        out = Path(tempfile.mkdtemp(prefix="apo-main-job-"))
        before = os.getloadavg()
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "room_selector" / "room_selector.py"),
                "--seed",
                str(seed),
                "--output-dir",
                str(out),
            ],
            check=True,
        )
        wall = time.perf_counter() - start
        summary = json.loads((out / f"seed{seed}" / "summary.json").read_text())
        summary["bench_wall_seconds"] = round(wall, 1)
        summary["load_before"] = before
        results.append(summary)
    print("\nMain job (room selector, embedded qwen2.5-coder-1.5b unless OPENAI_BASE_URL is set):")
    for r in results:
        print(
            f"  seed {r['seed']}: held-out {r['held_out_start']:.3f} -> {r['held_out_best']:.3f} "
            f"(gain {r['gain']:+.3f}), wall {r['bench_wall_seconds']:.0f} s (target < 600), "
            f"load average {r['load_average'][0]:.2f}"
        )
    gains = [r["gain"] for r in results]
    print(f"  mean gain {statistics.fmean(gains):+.3f} (target >= +0.25)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--main-job", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    framework_overhead(args.rounds, args.runners)
    if args.main_job:
        main_job(args.seeds)


if __name__ == "__main__":
    main()
