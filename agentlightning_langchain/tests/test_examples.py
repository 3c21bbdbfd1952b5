"""The LangChain and LangGraph examples run as written against the scripted model server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_langgraph_example_prints_the_triplets_of_each_node() -> None:
    out = run(EXAMPLES / "langgraph" / "sql_agent.py", "--tasks", "3")
    assert "epoch 1 train: 3/3 succeeded, mean reward 1.000" in out
    assert "node write_sql: 3 triplets" in out and "node check_sql: 3 triplets" in out
    assert "-> response: 'SELECT count(*) FROM users' reward: 1.0" in out
    assert "-> response: 'ok' reward: 1.0" in out


def test_the_langchain_agent_s_model_calls_all_reach_the_handler() -> None:
    out = run(EXAMPLES / "langchain" / "weather_agent.py", "--tasks", "2")
    assert "epoch 1 train: 2/2 succeeded, mean reward 1.000" in out
    assert "model calls: 4 reached the handler, 4 seen by the openai capture" in out
    assert "triplets" in out
