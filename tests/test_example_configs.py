"""The configs shipped next to the examples resolve, and the quickstart's runs as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def agl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentlightning_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_quickstart_config_runs() -> None:
    config = str(EXAMPLES / "quickstart" / "quickstart.toml")
    done = agl(
        "train",
        config,
        "--set",
        "trainer.n_runners=2",
        "--set",
        "train_dataset.n=8",
        "--set",
        "val_dataset.n=2",
        "--set",
        "trainer.algorithm.n_epochs=1",
    )
    assert done.returncode == 0, done.stderr
    assert "agl train: fit finished (Baseline)" in done.stdout


def test_quickstart_config_dry_run_matches_the_script() -> None:
    done = agl("train", str(EXAMPLES / "quickstart" / "quickstart.toml"), "--dry-run")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["trainer"]["algorithm"] == "agentlightning_baseline.baseline:Baseline"
    assert out["trainer"]["n_runners"] == 4 and out["trainer"]["initial_resources"] == ["prompt_template"]
    assert out["train_dataset"]["tasks"] == 200 and out["val_dataset"]["tasks"] == 50


def test_room_selector_config_resolves(tmp_path: Path) -> None:
    config = str(EXAMPLES / "room_selector" / "room_selector.toml")
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-secret",
        "RUN_DIR": str(tmp_path),
    }
    done = agl("train", config, "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["trainer"]["algorithm"] == "agentlightning_apo.apo:APO"
    assert out["trainer"]["store"] == "agentlightning_sqlite.store:SqliteLightningStore"
    assert out["train_dataset"]["tasks"] == 12 and out["val_dataset"]["tasks"] == 12
    assert "sk-secret" not in done.stdout
    llm = out["settings"]["trainer"]["initial_resources"]["llm"]
    assert llm["endpoint"] == "http://127.0.0.1:9/v1" and llm["api_key"] == "***"
    unset = agl("train", config, "--dry-run", env={"OPENAI_BASE_URL": ""} | {"RUN_DIR": str(tmp_path)})
    # set but empty counts as set; the LLM check then names the key, the file and its line
    assert unset.returncode != 0
    assert "trainer.initial_resources.llm" in unset.stderr and "LLM.endpoint" in unset.stderr
    assert "room_selector.toml:" in unset.stderr
