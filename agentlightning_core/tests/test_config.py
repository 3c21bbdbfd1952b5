"""Config files: every Trainer argument from TOML, YAML or a dict, overrides, environment
variables, datasets, the agent, and every mistake named with its key, file and line."""

from __future__ import annotations

import inspect
import itertools
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentlightning_core import (
    LLM,
    FastAlgorithm,
    InMemoryLightningStore,
    PromptTemplate,
    RolloutConfig,
    Trainer,
)
from agentlightning_core.adapter.messages import TraceToMessages
from agentlightning_core.cli import main
from agentlightning_core.execution.shm import SharedMemoryExecutionStrategy
from agentlightning_core.trainer import config as config_module
from agentlightning_core.trainer.config import ConfigError, load_config, parse_override

_ids = itertools.count()

AGENT_MODULE = """
from agentlightning_core import Hook, LitAgent, rollout

@rollout
def agent(task, prompt_template):
    return float(task["x"]) * 2

class CountingHook(Hook):
    def __init__(self, label="hook"):
        self.label = label

TASKS = [{"x": 1}, {"x": 2}]

def make_tasks(n, start=0):
    return [{"x": start + i} for i in range(n)]

not_an_agent = 42
"""


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, str]:
    """A folder holding an agent module under a name unique to the test (modules are cached)."""
    name = f"cfg_agent_{next(_ids)}"
    (tmp_path / f"{name}.py").write_text(AGENT_MODULE)
    return tmp_path, name


def full_toml(module: str) -> str:
    return textwrap.dedent(f'''\
        agent = "{module}:agent"
        train_dataset = "tasks.jsonl"
        val_dataset = "{module}:TASKS"
        command = "dev"

        [trainer]
        algorithm = "fast"
        runner = {{ type = "agent", poll_interval = 0.01 }}
        tracer = "otel"
        adapter = {{ type = "messages", on_bad_data = "drop" }}
        store = {{ type = "memory", watchdog_interval = 0.5 }}
        strategy = "agentlightning_core.execution.shm:SharedMemoryExecutionStrategy"
        n_runners = 2
        max_rollouts = 50
        hooks = ["{module}:CountingHook", {{ type = "{module}:CountingHook", label = "second" }}]
        progress = false
        unfinished_rollouts = "keep"

        [trainer.rollout_config]
        max_attempts = 2
        retry_condition = ["failed"]
        timeout_seconds = 30.0

        [trainer.initial_resources]
        prompt_template = {{ type = "prompt_template", template = "{{x}}" }}
        llm = {{ type = "llm", endpoint = "http://127.0.0.1:9/v1", model = "m", api_key = "${{CFG_TEST_KEY}}" }}
        ''')


def full_yaml(module: str) -> str:
    return textwrap.dedent(f"""\
        agent: "{module}:agent"
        train_dataset: tasks.jsonl
        val_dataset: "{module}:TASKS"
        command: dev
        trainer:
          algorithm: fast
          runner: {{type: agent, poll_interval: 0.01}}
          tracer: otel
          adapter: {{type: messages, on_bad_data: drop}}
          store: {{type: memory, watchdog_interval: 0.5}}
          strategy: "agentlightning_core.execution.shm:SharedMemoryExecutionStrategy"
          n_runners: 2
          max_rollouts: 50
          hooks:
            - "{module}:CountingHook"
            - {{type: "{module}:CountingHook", label: second}}
          progress: false
          unfinished_rollouts: keep
          rollout_config:
            max_attempts: 2
            retry_condition: [failed]
            timeout_seconds: 30.0
          initial_resources:
            prompt_template: {{type: prompt_template, template: "{{x}}"}}
            llm: {{type: llm, endpoint: "http://127.0.0.1:9/v1", model: m, api_key: "${{CFG_TEST_KEY}}"}}
        """)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def check_full(trainer: Trainer) -> None:
    assert isinstance(trainer.algorithm, FastAlgorithm)
    assert trainer.runner_spec == {"type": "agent", "poll_interval": 0.01}
    assert trainer.tracer_spec == "otel"
    assert isinstance(trainer.adapter, TraceToMessages)
    assert isinstance(trainer.store, InMemoryLightningStore)
    assert isinstance(trainer.strategy, SharedMemoryExecutionStrategy)
    assert (trainer.n_runners, trainer.max_rollouts, trainer.progress) == (2, 50, False)
    assert [h.label for h in trainer.hooks] == ["hook", "second"]  # type: ignore[attr-defined]
    assert trainer.unfinished_rollouts == "keep"
    assert trainer.rollout_config == RolloutConfig(
        max_attempts=2, retry_condition=["failed"], timeout_seconds=30.0
    )
    resources = trainer.initial_resources or {}
    assert resources["prompt_template"] == PromptTemplate("{x}")
    assert resources["llm"] == LLM(endpoint="http://127.0.0.1:9/v1", model="m", api_key="s3cret")


def test_the_config_keys_are_the_trainer_arguments() -> None:
    assert set(config_module._TRAINER_TYPES) == set(inspect.signature(Trainer).parameters)


@pytest.mark.parametrize("fmt", ["toml", "yaml", "yml", "dict"])
def test_every_trainer_argument_round_trips(
    fmt: str, folder: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, module = folder
    monkeypatch.setenv("CFG_TEST_KEY", "s3cret")
    write(path, "tasks.jsonl", '{"x": 3}\n\n{"x": 4}\n')
    if fmt == "toml":
        source: Any = write(path, "run.toml", full_toml(module))
    elif fmt in ("yaml", "yml"):
        source = write(path, f"run.{fmt}", full_yaml(module))
    else:
        import tomllib

        monkeypatch.syspath_prepend(str(path))  # a dict has no folder of its own
        source = tomllib.loads(full_toml(module))
        source["train_dataset"] = [{"x": 3}, {"x": 4}]  # relative paths need a file
    config = load_config(source)
    check_full(config.build_trainer())
    assert Trainer.from_config(source).n_runners == 2
    assert config.command == "dev"
    assert list(config.train_dataset or []) == [{"x": 3}, {"x": 4}]
    assert list(config.val_dataset or []) == [{"x": 1}, {"x": 2}]
    described = config.describe(config.build_trainer())
    assert described["settings"]["trainer"]["initial_resources"]["llm"]["api_key"] == "***"
    assert "s3cret" not in json.dumps(described, default=repr)
    assert described["train_dataset"] == {"tasks": 2, "first": {"x": 3}}
    algorithm = config.run()  # Trainer.dev on the two files' tasks
    rewards = sorted(s.reward for s in algorithm.results)  # type: ignore[attr-defined]
    assert rewards == [2.0, 4.0, 6.0, 8.0]


def test_toml_and_yaml_describe_the_same_run(
    folder: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, module = folder
    monkeypatch.setenv("CFG_TEST_KEY", "s3cret")
    write(path, "tasks.jsonl", '{"x": 3}\n')
    toml = load_config(write(path, "a.toml", full_toml(module)))
    yaml = load_config(write(path, "a.yaml", full_yaml(module)))
    assert toml.raw == yaml.raw
    assert toml.describe(toml.build_trainer())["trainer"] == yaml.describe(yaml.build_trainer())["trainer"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer.n_runners=4", (("trainer", "n_runners"), 4)),
        ("trainer.progress=false", (("trainer", "progress"), False)),
        ("trainer.store.path=runs/x.db", (("trainer", "store", "path"), "runs/x.db")),
        ('trainer.store={"type": "memory"}', (("trainer", "store"), {"type": "memory"})),
        ("agent=mod:fn", (("agent",), "mod:fn")),
        (
            "trainer.initial_resources.p.template={a} = {b}",
            (("trainer", "initial_resources", "p", "template"), "{a} = {b}"),
        ),
    ],
)
def test_override_values_are_json_or_text(text: str, expected: tuple[tuple[str, ...], Any]) -> None:
    assert parse_override(text) == expected


def test_overrides_change_and_add_keys(folder: tuple[Path, str]) -> None:
    path, module = folder
    file = write(path, "run.toml", f'agent = "{module}:agent"\n[trainer]\nn_runners = 1\n')
    config = load_config(
        file, ["trainer.n_runners=3", "trainer.store.type=memory", "trainer.store.watchdog_interval=null"]
    )
    assert config.trainer_kwargs["n_runners"] == 3
    assert isinstance(config.trainer_kwargs["store"], InMemoryLightningStore)
    assert Trainer.from_config(file, ["trainer.n_runners=5"]).n_runners == 5


def test_environment_interpolation(folder: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, module = folder
    monkeypatch.setenv("CFG_MODEL", "qwen")
    monkeypatch.delenv("CFG_UNSET", raising=False)
    file = write(
        path,
        "run.toml",
        textwrap.dedent(f"""\
            agent = "{module}:agent"
            [trainer.initial_resources.llm]
            type = "llm"
            endpoint = "${{CFG_UNSET:-http://127.0.0.1:1/v1}}"
            model = "${{CFG_MODEL}}-$${{literal}}"
            """),
    )
    llm = load_config(file).trainer_kwargs["initial_resources"]["llm"]
    assert (llm.endpoint, llm.model) == ("http://127.0.0.1:1/v1", "qwen-${literal}")


def test_datasets_in_every_form(folder: tuple[Path, str]) -> None:
    path, module = folder
    (path / "data").mkdir()
    write(path / "data", "t.json", '[{"x": 1}, {"x": 2}]')
    write(path / "data", "t.csv", "x,y\n1,a\n2,b\n")
    cases: dict[str, Any] = {
        "data/t.json": [{"x": 1}, {"x": 2}],
        "data/t.csv": [{"x": "1", "y": "a"}, {"x": "2", "y": "b"}],
        str(path / "data" / "t.json"): [{"x": 1}, {"x": 2}],
        f"{module}:TASKS": [{"x": 1}, {"x": 2}],
        f"{module}:make_tasks": None,  # a function with arguments: must be called with them
    }
    for spec, expected in cases.items():
        file = write(path, "run.toml", f'agent = "{module}:agent"\ntrain_dataset = {json.dumps(spec)}\n')
        if expected is None:
            with pytest.raises(ConfigError, match=r"run.toml:2: train_dataset"):
                load_config(file)
        else:
            assert list(load_config(file).train_dataset or []) == expected, spec
    file = write(
        path,
        "run.toml",
        f'agent = "{module}:agent"\ntrain_dataset = {{ call = "{module}:make_tasks", n = 2, start = 5 }}\n'
        "val_dataset = [{ x = 9 }]\n",
    )
    config = load_config(file)
    assert (config.train_dataset, config.val_dataset) == ([{"x": 5}, {"x": 6}], [{"x": 9}])


def test_dry_run_prints_everything_and_runs_nothing(
    folder: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, module = folder
    monkeypatch.setenv("CFG_TEST_KEY", "s3cret")
    write(path, "tasks.jsonl", '{"x": 3}\n')
    file = write(path, "run.toml", full_toml(module))
    assert main(["train", str(file), "--dry-run", "--set", "trainer.n_runners=3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trainer"]["n_runners"] == 3 and out["trainer"]["algorithm"].endswith(":FastAlgorithm")
    assert out["agent"].endswith(":FunctionalLitAgent") and out["command"] == "dev"
    assert out["val_dataset"] == {"tasks": 2, "first": {"x": 1}}
    assert "s3cret" not in json.dumps(out)


def test_agl_train_runs_the_config(folder: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, module = folder
    file = write(
        path,
        "run.yaml",
        f'agent: "{module}:agent"\ntrain_dataset: "{module}:TASKS"\ntrainer:\n  progress: false\n'
        "  initial_resources:\n    prompt_template: '{x}'\n",
    )
    assert main(["train", str(file), "--dev"]) == 0
    assert "agl train: dev finished (FastAlgorithm)" in capsys.readouterr().out


# --- mistakes ----------------------------------------------------------------------------------


def error_cases(module: str) -> list[tuple[str, str, str]]:
    """(file name, text, the error expected) -- the regex names the key and line, and the fix."""
    a = f'agent = "{module}:agent"\n'
    return [
        (
            "x.toml",
            a + "trainers = {}\n",
            r"x.toml:2: trainers: unknown key. Accepted keys: agent, command, train_dataset, trainer, val_dataset",
        ),
        (
            "x.toml",
            a + "[trainer]\nn_runner = 2\n",
            r"x.toml:3: trainer.n_runner: unknown Trainer argument. Accepted keys: adapter, algorithm, hooks, initial_resources, max_rollouts, n_runners, n_workers, progress, rollout_config, runner, store, strategy, tracer, unfinished_rollouts",
        ),
        (
            "x.toml",
            a + '[trainer]\nn_runners = "four"\n',
            r"x.toml:3: trainer.n_runners: must be an integer, got str 'four'",
        ),
        (
            "x.toml",
            a + "[trainer]\nn_runners = true\n",
            r"x.toml:3: trainer.n_runners: must be an integer, got bool",
        ),
        (
            "x.toml",
            a + "[trainer]\nn_runners = 0\n",
            r"x.toml:3: trainer.n_runners: must be a positive integer, got 0",
        ),
        (
            "x.toml",
            a + "[trainer]\nprogress = 1\n",
            r"x.toml:3: trainer.progress: must be true or false, got int",
        ),
        (
            "x.toml",
            a + "[trainer]\nstore = 3\n",
            r"x.toml:3: trainer.store: must be a string or a table, got int",
        ),
        (
            "x.toml",
            a + '[trainer]\nstore = "redis"\n',
            r"x.toml:3: trainer.store: Unknown store 'redis'. Available stores: .*memory",
        ),
        (
            "x.toml",
            a + '[trainer]\nstore = { type = "memory", pth = 1 }\n',
            r"x.toml:3: trainer.store: Cannot create store .*pth.*Accepted arguments: .*watchdog_interval",
        ),
        (
            "x.toml",
            a + '[trainer]\nstore = { path = "x" }\n',
            r"x.toml:3: trainer.store: a table spec needs type = NAME",
        ),
        ("x.toml", a + '[trainer]\ntracer = "nope"\n', r"x.toml:3: trainer.tracer: Unknown tracer 'nope'"),
        (
            "x.toml",
            a + '[trainer]\nalgorithm = "no_such_mod:X"\n',
            r"x.toml:3: trainer.algorithm: Cannot import algorithm 'no_such_mod:X'",
        ),
        (
            "x.toml",
            a + '[trainer]\nhooks = ["' + module + ':TASKS"]\n',
            r"x.toml:3: trainer.hooks\[0\]: .*is not a Hook",
        ),
        ("x.toml", a + '[trainer]\nhooks = "x:y"\n', r"x.toml:3: trainer.hooks: must be a list, got str"),
        (
            "x.toml",
            a + '[trainer]\nunfinished_rollouts = "drop"\n',
            r"x.toml:3: trainer.unfinished_rollouts: must be 'cancel' or 'keep', got 'drop'",
        ),
        (
            "x.toml",
            a + "[trainer.rollout_config]\nmax_attempt = 2\n",
            r"x.toml:3: trainer.rollout_config.max_attempt: unknown RolloutConfig field. Accepted keys: timeout_seconds, unresponsive_seconds, max_attempts, retry_condition",
        ),
        (
            "x.toml",
            a + "[trainer.rollout_config]\nmax_attempts = -1\n",
            r"x.toml:2: trainer.rollout_config: .*max_attempts",
        ),
        (
            "x.toml",
            a + '[trainer.initial_resources]\np = { type = "prompt" }\n',
            r"x.toml:3: trainer.initial_resources.p: needs type = one of 'llm', 'proxy_llm', 'prompt_template', got 'prompt'",
        ),
        (
            "x.toml",
            a
            + '[trainer.initial_resources.p]\ntype = "prompt_template"\ntemplate = "{a}"\nengin = "jinja"\n',
            r"x.toml:5: trainer.initial_resources.p.engin: unknown prompt_template field. Accepted keys: type, template, engine",
        ),
        (
            "x.toml",
            a + '[trainer.initial_resources]\nllm = { type = "llm", model = "m" }\n',
            r"x.toml:3: trainer.initial_resources.llm: .*endpoint",
        ),
        ("x.toml", a + "trainer = 3\n", r"x.toml:2: trainer: must be a table of Trainer arguments"),
        ("x.toml", a + 'command = "train"\n', r"x.toml:2: command: must be one of 'fit', 'dev', got 'train'"),
        (
            "x.toml",
            'agent = "no_such_module_cfg:agent"\n',
            r"x.toml:1: agent: cannot import 'no_such_module_cfg:agent'.*importable",
        ),
        ("x.toml", f'agent = "{module}:nope"\n', r"x.toml:1: agent: cannot import .*has no attribute 'nope'"),
        (
            "x.toml",
            'agent = "just_a_name"\n',
            r"x.toml:1: agent: must name the agent as \"module:attribute\"",
        ),
        (
            "x.toml",
            f'agent = "{module}:not_an_agent"\n',
            r"x.toml:1: agent: .* is int, not an agent: decorate the function with @rollout",
        ),
        (
            "x.toml",
            a + 'train_dataset = "missing.jsonl"\n',
            r"x.toml:2: train_dataset: cannot read '.*missing.jsonl'",
        ),
        (
            "x.toml",
            a + 'train_dataset = "bad.jsonl"\n',
            r"x.toml:2: train_dataset: .*bad.jsonl:2 is not a JSON line",
        ),
        (
            "x.toml",
            a + 'train_dataset = "obj.json"\n',
            r"x.toml:2: train_dataset: .*obj.json must hold a JSON list of tasks, got dict",
        ),
        (
            "x.toml",
            a + "train_dataset = { n = 3 }\n",
            r"x.toml:2: train_dataset: a dataset table needs call = \"module:function\"",
        ),
        ("x.toml", a + "train_dataset = 5\n", r"x.toml:2: train_dataset: must be a list, a file path"),
        (
            "x.toml",
            a + f'train_dataset = "{module}:not_an_agent"\n',
            r"x.toml:2: train_dataset: .* gave int, not a list of tasks",
        ),
        (
            "x.toml",
            a + '[trainer.initial_resources.llm]\ntype = "llm"\nmodel = "m"\nendpoint = "${CFG_NEVER_SET}"\n',
            r"x.toml:5: trainer.initial_resources.llm.endpoint: the environment variable CFG_NEVER_SET is not set; set it, or give a default as \$\{CFG_NEVER_SET:-value\}",
        ),
        ("x.toml", "agent = [1,\n", r"x.toml: not valid TOML"),
        ("x.yaml", "agent: [1\n", r"x.yaml: not valid YAML"),
        (
            "x.yaml",
            f"agent: '{module}:agent'\ntrainer:\n  store: memory\n  n_runners: two\n",
            r"x.yaml:4: trainer.n_runners: must be an integer, got str 'two'",
        ),
        (
            "x.yaml",
            f"agent: '{module}:agent'\ntrainer:\n  hooks:\n    - {module}:CountingHook\n    - 3\n",
            r"x.yaml:5: trainer.hooks\[1\]: must name a hook class",
        ),
        ("x.yaml", "- 1\n- 2\n", r"x.yaml: a config must be a table of keys, got list"),
        ("x.ini", "agent = 1\n", r"x.ini: unknown config format '.ini'; name it .toml, .yaml or .yml"),
    ]


def test_every_mistake_names_key_file_and_line(
    folder: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, module = folder
    monkeypatch.delenv("CFG_NEVER_SET", raising=False)
    write(path, "bad.jsonl", '{"x": 1}\n{"x": \n')
    write(path, "obj.json", '{"x": 1}')
    for name, text, expected in error_cases(module):
        file = write(path, name, text)
        with pytest.raises(ConfigError, match=expected):
            load_config(file)


def test_missing_file_and_missing_agent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Cannot read the config file '.*nope.toml': No such file"):
        load_config(tmp_path / "nope.toml")
    file = write(tmp_path, "x.toml", "[trainer]\nn_runners = 1\n")
    assert load_config(file).agent is None  # Trainer.from_config needs no agent
    with pytest.raises(ConfigError, match=r"x.toml: agent: is missing: name the agent to train"):
        load_config(file, require_agent=True)


def test_mistakes_in_overrides_name_the_override(folder: tuple[Path, str]) -> None:
    path, module = folder
    file = write(path, "x.toml", f'agent = "{module}:agent"\n[trainer]\nn_runners = 1\n')
    with pytest.raises(
        ConfigError, match=r"--set trainer.n_runner: unknown Trainer argument. Accepted keys: adapter"
    ):
        load_config(file, ["trainer.n_runner=2"])
    with pytest.raises(ConfigError, match=r"--set trainer.n_runners: must be an integer, got str 'many'"):
        load_config(file, ["trainer.n_runners=many"])
    with pytest.raises(ConfigError, match=r"--set 'n_runners': expected KEY=VALUE with a dotted key"):
        load_config(file, ["n_runners"])
    with pytest.raises(
        ConfigError,
        match=r"x.toml:3: trainer.n_runners: is int 1, not a table: cannot set trainer.n_runners.x",
    ):
        load_config(file, ["trainer.n_runners.x=1"])


def test_dict_configs_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"<config dict>: trainer.store: Unknown store 'nope'"):
        Trainer.from_config({"trainer": {"store": "nope"}})


def test_cli_reports_a_mistake_in_one_line(
    folder: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, module = folder
    file = write(path, "x.toml", f'agent = "{module}:agent"\n[trainer]\nn_runners = "x"\n')
    assert main(["train", str(file)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("agl: error: ") and "x.toml:3: trainer.n_runners" in err
