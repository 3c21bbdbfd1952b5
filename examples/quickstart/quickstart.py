"""Quickstart: train an arithmetic agent with the ``baseline`` algorithm, no LLM needed.

The agent's "policy" is a prompt template resource: it renders each task into an
expression (``"{a} {op} {b}"``) and a deterministic calculator answers it. The reward is 1
for a correct answer, else 0. Try a worse policy with ``--template "{a} {op} {a}"``, or a
broken one with ``--template "{a}"`` (the calculator rejects it: every rollout fails).

    python examples/quickstart/quickstart.py [--epochs 2] [--runners 4] [--template ...]
"""

from __future__ import annotations

import argparse
import logging
import operator
import random
from typing import Any

from agentlightning_core import PromptTemplate, Trainer, rollout
from agentlightning_core.emitter import emit_object

OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def make_tasks(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    tasks: list[dict[str, object]] = []
    for _ in range(n):
        a, b, op = rng.randint(0, 99), rng.randint(0, 99), rng.choice(sorted(OPERATORS))
        tasks.append({"a": a, "b": b, "op": op, "answer": OPERATORS[op](a, b)})
    return tasks


def calculate(expression: str) -> int:
    """Evaluate ``"<int> <op> <int>"``; anything else is a wrong answer (raises ValueError)."""
    left, op, right = expression.split()
    result: int = OPERATORS[op](int(left), int(right))
    return result


@rollout
def arithmetic_agent(task: dict[str, Any], prompt_template: PromptTemplate) -> float:
    expression = prompt_template.format(a=task["a"], b=task["b"], op=task["op"])
    answer = calculate(expression)
    emit_object({"expression": expression, "answer": answer})
    return 1.0 if answer == task["answer"] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--template", default="{a} {op} {b}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Every trace lacks an LLM call (dropped, see below); the counts are printed instead of a warning each.
    logging.getLogger("agentlightning_core.adapter").setLevel(logging.ERROR)

    trainer = Trainer(
        algorithm={"type": "baseline", "n_epochs": args.epochs},
        n_runners=args.runners,
        # The agent calls no LLM, so its traces hold no prompt/response triplets: count them
        # as dropped instead of rejecting them loudly (the adapter's default).
        adapter={"type": "tracer_triplet", "on_bad_data": "drop"},
        initial_resources={"prompt_template": PromptTemplate(args.template)},
    )
    baseline = trainer.fit(
        arithmetic_agent, make_tasks(args.tasks, seed=1), make_tasks(args.tasks // 4, seed=2)
    )
    for stats in baseline.history:  # type: ignore[attr-defined]
        mean = "n/a" if stats.mean_reward is None else f"{stats.mean_reward:.3f}"
        print(
            f"epoch {stats.epoch} {stats.mode:5}: {stats.succeeded}/{stats.rollouts} succeeded, "
            f"mean reward {mean}, traces without LLM calls (no triplets): {stats.dropped}"
        )


if __name__ == "__main__":
    main()
