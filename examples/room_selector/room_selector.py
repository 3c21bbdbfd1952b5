"""The main job: APO improves a room-booking agent's prompt, measured on held-out requests.

The agent reads a booking request and names a meeting room; it is graded against the
office's house policy, which its starting prompt does not mention. APO runs the agent
through the store, shows graded transcripts to the optimizer model and keeps the prompts
that score better on validation requests. The starting and the best prompt are then both
scored on a held-out test set the optimizer never saw.

With ``OPENAI_BASE_URL`` set (and ``OPENAI_API_KEY``, ``OPENAI_MODEL``) it uses that
endpoint; otherwise it starts the embedded model (``agentlightning-local``).

    python examples/room_selector/room_selector.py [--seed 0] [--output-dir runs/room_selector]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rooms import grade, rooms_text, split_tasks

from agentlightning_core import LLM, PromptTemplate, Trainer, rollout

START_PROMPT = Path(__file__).resolve().parent / "start_prompt.txt"
ANSWER_TOKENS = 16
"""Replies longer than this are cut off: a rambling agent runs out of words before naming a room."""


_CLIENTS: dict[str, openai.OpenAI] = {}


def _client(llm: LLM) -> openai.OpenAI:
    """One client per endpoint: creating one per request costs more than a short answer."""
    url = llm.get_base_url()
    if url not in _CLIENTS:
        _CLIENTS[url] = openai.OpenAI(base_url=url, api_key=llm.api_key or "no-key", max_retries=2)
    return _CLIENTS[url]


@rollout
def room_agent(task: dict[str, Any], llm: LLM, prompt_template: PromptTemplate) -> float:
    client = _client(llm)
    reply = client.chat.completions.create(
        model=llm.model,
        messages=[
            {"role": "system", "content": prompt_template.format(rooms=rooms_text())},
            {"role": "user", "content": task["request"]},
        ],
        max_tokens=ANSWER_TOKENS,
        temperature=0.0,
        seed=42,
    )
    return grade(reply.choices[0].message.content or "", task["answer"])


def held_out_score(llm: LLM, prompt: str, tasks: list[dict[str, Any]], runners: int) -> float:
    """Mean reward of ``prompt`` on ``tasks`` (one rollout each, through a Trainer like training)."""
    trainer = Trainer(
        n_runners=runners,
        progress=False,
        initial_resources={"llm": llm, "prompt_template": PromptTemplate(prompt)},
    )
    fast = trainer.dev(room_agent, tasks)
    rewards = [s.reward or 0.0 for s in fast.results]  # type: ignore[attr-defined]
    return statistics.fmean(rewards)


@contextlib.contextmanager
def endpoint(threads: int | None) -> Iterator[LLM]:
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        print(f"Using the endpoint {base_url} (model {model}) from OPENAI_BASE_URL", flush=True)
        yield LLM(endpoint=base_url, model=model, api_key=os.environ.get("OPENAI_API_KEY"))
        return
    from agentlightning_local import LocalModel

    print(
        "OPENAI_BASE_URL is not set: starting the embedded model qwen2.5-coder-1.5b on 127.0.0.1", flush=True
    )
    with LocalModel("qwen2.5-coder-1.5b", threads=threads) as llm:
        yield llm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split and of APO's choices")
    parser.add_argument("--output-dir", default="runs/room_selector")
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="embedded model threads (default: every CPU; the runners only wait on HTTP)",
    )
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--branch-factor", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gradient-batch-size", type=int, default=6)
    parser.add_argument("--max-wall-seconds", type=float, default=500.0, help="budget of the search itself")
    parser.add_argument("--store", default="sqlite", help="'sqlite' (resumable) or 'memory'")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.output_dir) / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    train, val, test = split_tasks(args.seed)
    start = START_PROMPT.read_text(encoding="utf-8").strip()
    started = time.monotonic()
    print(
        f"Room selector: {len(train)} training, {len(val)} validation, {len(test)} held-out test requests. "
        f"APO settings: beam_width={args.beam_width} branch_factor={args.branch_factor} rounds={args.rounds} "
        f"gradient_batch_size={args.gradient_batch_size} val_batch_size={len(val)} edit_mode=rewrite "
        f"diversity_temperature=0 max_critique_conversations={args.gradient_batch_size} "
        f"max_wall_seconds={args.max_wall_seconds:g}",
        flush=True,
    )
    if args.store == "sqlite" and (out / "store.sqlite").exists():
        print(
            f"Resuming the run stored in {out} (rollouts it finished are not run again; "
            f"delete {out} to start over)",
            flush=True,
        )
    with endpoint(args.threads) as llm:
        store: Any = (
            {"type": "sqlite", "path": str(out / "store.sqlite")} if args.store == "sqlite" else "memory"
        )
        trainer = Trainer(
            algorithm={
                "type": "apo",
                "beam_width": args.beam_width,
                "branch_factor": args.branch_factor,
                "beam_rounds": args.rounds,
                "gradient_batch_size": args.gradient_batch_size,
                "val_batch_size": len(val),
                "edit_mode": "rewrite",
                "diversity_temperature": 0.0,
                "max_edit_tokens": 400,
                "max_critique_conversations": args.gradient_batch_size,
                "max_wall_seconds": args.max_wall_seconds,
                "output_dir": str(out),
                "seed": args.seed,
                "progress": True,
            },
            adapter="messages",
            store=store,
            n_runners=args.runners,
            progress=False,
            initial_resources={"llm": llm, "prompt_template": PromptTemplate(start)},
        )
        apo = trainer.fit(room_agent, train, val)
        best = apo.get_best_prompt().template  # type: ignore[attr-defined]
        searched = time.monotonic() - started
        print("\nScoring the starting and the best prompt on the held-out test set ...", flush=True)
        start_score = held_out_score(llm, start, test, args.runners)
        best_score = start_score if best == start else held_out_score(llm, best, test, args.runners)
    elapsed = time.monotonic() - started
    summary = {
        "seed": args.seed,
        "held_out_start": start_score,
        "held_out_best": best_score,
        "gain": best_score - start_score,
        "val_best": apo.best.val_score,  # type: ignore[attr-defined]
        "search_seconds": round(searched, 1),
        "wall_seconds": round(elapsed, 1),
        "rollouts": apo.stats.rollouts,  # type: ignore[attr-defined]
        "optimizer_calls": apo.stats.llm_calls,  # type: ignore[attr-defined]
        "load_average": os.getloadavg(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"\nStarting prompt:\n{start}\n\nBest prompt:\n{best}\n")
    print(
        f"Held-out test score: start {start_score:.3f} -> best {best_score:.3f} ({best_score - start_score:+.3f})"
    )
    print(f"Wall time {elapsed:.0f} s (search {searched:.0f} s)")
    print(f"History: {apo.history_path}")  # type: ignore[attr-defined]
    plot = apo.plot_path  # type: ignore[attr-defined]
    print(
        f"Plot: {plot}" if plot is not None and plot.exists() else "Plot: not drawn (pip install matplotlib)"
    )
    print(f"Best prompt file: {apo.best_prompt_path}")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
