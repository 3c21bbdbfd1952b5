"""Child process of the resume test: APO on a SQLite store against the parent's scripted server.

python apo_child.py BASE_URL DB_PATH OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apo_world import SEED_PROMPT, tasks, yes_agent

from agentlightning_apo import APO
from agentlightning_core import LLM, PromptTemplate, Trainer


def main() -> None:
    base_url, db_path, output_dir = sys.argv[1:4]
    apo = APO(
        beam_width=2,
        branch_factor=2,
        beam_rounds=2,
        gradient_batch_size=2,
        val_batch_size=3,
        output_dir=output_dir,
        progress=False,
    )
    trainer = Trainer(
        algorithm=apo,
        adapter="messages",
        store={"type": "sqlite", "path": db_path},
        n_runners=2,
        progress=False,
        initial_resources={
            "llm": LLM(endpoint=base_url, model="scripted"),
            "prompt_template": PromptTemplate(SEED_PROMPT),
        },
    )
    trainer.fit(yes_agent, tasks("train", 4), tasks("val", 3))
    print(f"BEST {apo.get_best_prompt().template}", flush=True)
    print(f"REUSED {apo.stats.reused_rollouts} ROLLOUTS {apo.stats.rollouts}", flush=True)


if __name__ == "__main__":
    main()
