"""Training runs described by a file: ``agl train CONFIG`` and :meth:`Trainer.from_config`.

A config is a TOML or YAML file (or the same structure as a dict)::

    agent = "quickstart:arithmetic_agent"       # "module:function" (the file's folder is importable)
    train_dataset = "tasks.jsonl"                # .jsonl/.json/.csv (relative to the file) or "module:attr"
    command = "fit"                              # or "dev"

    [trainer]                                    # every Trainer argument
    algorithm = {type = "baseline", n_epochs = 2}
    n_runners = 4
    store = {type = "sqlite", path = "${RUN_DIR:-runs}/store.db"}

``${NAME}`` and ``${NAME:-default}`` in strings are replaced by environment variables
(secrets stay out of the file; ``$$`` is a literal ``$``). :func:`load_config` applies
``key=value`` overrides, checks every key and type, and resolves components, the agent
and the datasets; a mistake raises :class:`ConfigError` naming the key, the file and line,
and the accepted keys. See docs/config.md.
"""

from __future__ import annotations

import csv
import inspect
import json
import logging
import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from agentlightning_core.errors import AgentLightningError

if TYPE_CHECKING:
    from agentlightning_core.algorithm.base import Algorithm
    from agentlightning_core.litagent.base import LitAgent
    from agentlightning_core.trainer.trainer import Trainer

__all__ = ["COMMANDS", "ConfigError", "TrainConfig", "load_config", "parse_override", "read_config_file"]

logger = logging.getLogger(__name__)

COMMANDS = ("fit", "dev")
"""What ``agl train`` runs: :meth:`Trainer.fit` or :meth:`Trainer.dev`."""

Key = tuple[str | int, ...]

_TOP_KEYS: dict[str, str] = {
    "agent": 'the agent, "module:function" (a @rollout function or a LitAgent instance or class)',
    "trainer": "a table of Trainer arguments",
    "train_dataset": 'tasks: a list, a .jsonl/.json/.csv file, "module:attr" or {call = "module:function", ...}',
    "val_dataset": "validation tasks, in the same forms as train_dataset",
    "command": "'fit' (default) or 'dev'",
}

_COMPONENTS: dict[str, str] = {
    "algorithm": "algorithm",
    "runner": "runner",
    "tracer": "tracer",
    "adapter": "adapter",
    "store": "store",
    "strategy": "execution_strategy",
}
"""Trainer arguments that take a component spec, and their component kind."""

_TRAINER_TYPES: dict[str, tuple[type, ...]] = {
    **{name: (str, dict) for name in _COMPONENTS},
    "n_runners": (int,),
    "max_rollouts": (int,),
    "n_workers": (int,),
    "initial_resources": (dict,),
    "hooks": (list,),
    "progress": (bool,),
    "rollout_config": (dict,),
    "unfinished_rollouts": (str,),
}
"""The type each Trainer argument takes in a file (a test ties the keys to Trainer's signature)."""

_RESOURCE_TYPES = ("llm", "proxy_llm", "prompt_template")
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET = re.compile(r"key|token|secret|password|passwd|credential|auth", re.IGNORECASE)
"""Values under such keys, or read from such environment variables, print as ``***``."""
_TYPE_NAMES = {str: "a string", dict: "a table", int: "an integer", bool: "true or false", list: "a list"}


class ConfigError(AgentLightningError, ValueError):
    """A config file (or dict, or ``--set`` override) with a wrong key, type or value."""


@attrs.define
class _Source:
    """Where a config came from, to point at the line of a key."""

    path: Path | None
    lines: dict[Key, int] = attrs.field(factory=dict)
    overridden: set[Key] = attrs.field(factory=set)

    def where(self, key: Key) -> str:
        dotted = _dotted(key)
        if key[:1] and any(key[: len(o)] == o for o in self.overridden):
            return f"--set {dotted}"
        name = str(self.path) if self.path is not None else "<config dict>"
        if not key:
            return name
        for n in range(len(key), 0, -1):
            line = self.lines.get(key[:n])
            if line is not None:
                return f"{name}:{line}: {dotted}"
        return f"{name}: {dotted}"

    def error(self, key: Key, problem: str, accepted: Sequence[str] | None = None) -> ConfigError:
        message = f"{self.where(key)}: {problem}"
        if accepted is not None:
            message += f". Accepted keys: {', '.join(accepted)}"
        return ConfigError(message)


def _dotted(key: Key) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else ("." if i else "") + k for i, k in enumerate(key))


# --- reading ----------------------------------------------------------------------------


def read_config_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[Key, int]]:
    """The raw mapping of a ``.toml``/``.yaml``/``.yml`` file and the line of each key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {str(file)!r}: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        return data, _toml_lines(text)
    if suffix in (".yaml", ".yml"):
        return _read_yaml(file, text)
    raise ConfigError(
        f"{file}: unknown config format {suffix or '(no suffix)'!r}; name it .toml, .yaml or .yml"
    )


_TOML_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(
    r'^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\'))*)\s*='
)


def _toml_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text))


def _toml_lines(text: str) -> dict[Key, int]:
    """Line numbers of table headers and ``key =`` lines (keys inside inline tables get their parent's)."""
    lines: dict[Key, int] = {}
    table: tuple[str, ...] = ()
    depth = 0  # open brackets of a multi-line value: no keys in there
    for number, line in enumerate(text.splitlines(), start=1):
        if depth == 0:
            header = _TOML_TABLE.match(line)
            if header:
                table = _toml_key(header.group(1))
                lines.setdefault(table, number)
                continue
            match = _TOML_KEY.match(line)
            if match:
                lines.setdefault(table + _toml_key(match.group(1)), number)
        stripped = re.sub(r'"(?:\\.|[^"\\])*"|\'[^\']*\'|#.*$', "", line)
        depth = max(
            0, depth + stripped.count("[") + stripped.count("{") - stripped.count("]") - stripped.count("}")
        )
    return lines


def _read_yaml(file: Path, text: str) -> tuple[dict[str, Any], dict[Key, int]]:
    try:
        import yaml
    except ImportError:
        from agentlightning_core.plugins import install_hint

        raise ConfigError(
            f"{file}: YAML configs need PyYAML. Install it with: {install_hint('agentlightning-core', 'yaml')}, "
            "or write the config as TOML"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    lines: dict[Key, int] = {}

    def walk(n: Any, key: Key) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                child = (*key, k.value)
                lines[child] = k.start_mark.line + 1
                walk(v, child)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[(*key, i)] = v.start_mark.line + 1
                walk(v, (*key, i))

    walk(node, ())
    return ({} if data is None else data), lines


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"trainer.n_runners=4"`` -> ``(("trainer", "n_runners"), 4)``: the value is JSON when it
    parses as JSON (numbers, true/false, null, lists, objects, quoted strings), else the text."""
    key, sep, raw = text.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. trainer.n_runners=4")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return path, value


# --- environment interpolation ------------------------------------------------------------


def _interpolate(value: Any, key: Key, source: _Source, secret: set[Key]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if _SECRET.search(name):
                secret.add(key)
            found = os.environ.get(name)
            if found is None:
                if default is None:
                    raise source.error(
                        key,
                        f"the environment variable {name} is not set; set it, or give a default as ${{{name}:-value}}",
                    )
                return default
            return found

        return _ENV.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*key, k), source, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*key, i), source, secret) for i, v in enumerate(value)]
    return value


# --- the resolved config ---------------------------------------------------------------------


@attrs.define
class TrainConfig:
    """A checked config: the Trainer's arguments resolved, the agent and datasets loaded."""

    raw: dict[str, Any]
    """The config after interpolation and overrides (what ``--dry-run`` prints, secrets masked)."""
    trainer_kwargs: dict[str, Any]
    agent: LitAgent[Any] | None
    train_dataset: Sequence[Any] | None
    val_dataset: Sequence[Any] | None
    command: Literal["fit", "dev"] = "fit"
    path: Path | None = None
    secret_keys: frozenset[Key] = frozenset()

    def build_trainer(self, **extra: Any) -> Trainer:
        """A :class:`Trainer` of the ``[trainer]`` arguments (``extra`` overrides them)."""
        from agentlightning_core.trainer.trainer import Trainer

        return Trainer(**{**self.trainer_kwargs, **extra})

    def run(self, trainer: Trainer | None = None) -> Algorithm:
        """Run ``command`` (fit or dev) of ``trainer`` (default: :meth:`build_trainer`) on the agent and datasets."""
        if self.agent is None:
            raise ConfigError(
                f'{self.path or "<config dict>"}: the config names no agent; add agent = "module:function"'
            )
        trainer = trainer if trainer is not None else self.build_trainer()
        door = trainer.fit if self.command == "fit" else trainer.dev
        return door(self.agent, self.train_dataset, self.val_dataset)

    def describe(self, trainer: Trainer | None = None) -> dict[str, Any]:
        """What a run would do, as JSON-able data: the config (secrets masked), components, agent, datasets."""
        out: dict[str, Any] = {"config": str(self.path) if self.path else None, "command": self.command}
        out["settings"] = _masked(self.raw, (), self.secret_keys)
        if trainer is not None:
            out["trainer"] = {
                "algorithm": _name(trainer.algorithm),
                "store": _name(trainer.store),
                "tracer": _name(trainer.tracer),
                "adapter": _name(trainer.adapter)
                if trainer.adapter is not None
                else "tracer_triplet (default)",
                "strategy": _name(trainer.strategy),
                "runner": trainer.runner_spec
                if isinstance(trainer.runner_spec, str)
                else _name(trainer.runner_spec),
                "n_runners": trainer.n_runners,
                "max_rollouts": trainer.max_rollouts,
                "initial_resources": sorted(trainer.initial_resources or {}),
                "hooks": [_name(h) for h in trainer.hooks],
                "rollout_config": None
                if trainer.rollout_config is None
                else trainer.rollout_config.to_json(),
                "unfinished_rollouts": trainer.unfinished_rollouts,
            }
        out["agent"] = _name(self.agent) if self.agent is not None else None
        for name in ("train_dataset", "val_dataset"):
            data = getattr(self, name)
            out[name] = (
                None if data is None else {"tasks": len(data), "first": data[0] if len(data) else None}
            )
        return out


def _name(obj: Any) -> str | None:
    if obj is None:
        return None
    cls = obj if inspect.isclass(obj) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _masked(value: Any, key: Key, secret: frozenset[Key]) -> Any:
    if key in secret or (
        key and isinstance(key[-1], str) and _SECRET.search(key[-1]) and isinstance(value, str)
    ):
        return "***"
    if isinstance(value, dict):
        return {k: _masked(v, (*key, k), secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, (*key, i), secret) for i, v in enumerate(value)]
    return value


def load_config(
    config: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str | tuple[Sequence[str], Any]] = (),
    *,
    require_agent: bool = False,
) -> TrainConfig:
    """Read, check and resolve a config (file path or mapping) with ``KEY=VALUE`` ``overrides``."""
    if isinstance(config, Mapping):
        source = _Source(None)
        data: Any = _deep_copy(config)
    else:
        path = Path(config).resolve() if Path(config).exists() else Path(config)
        raw, lines = read_config_file(path)
        source = _Source(path, lines)
        data = raw
    if not isinstance(data, dict):
        raise ConfigError(f"{source.where(())}: a config must be a table of keys, got {type(data).__name__}")
    for item in overrides:
        key_path, value = parse_override(item) if isinstance(item, str) else (tuple(item[0]), item[1])
        _set(data, tuple(key_path), value, source)
    secret: set[Key] = set()
    data = _interpolate(data, (), source, secret)
    return _check(data, source, frozenset(secret), require_agent)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _set(data: dict[str, Any], key: tuple[str, ...], value: Any, source: _Source) -> None:
    source.overridden.add(key)
    node = data
    for i, part in enumerate(key[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise source.error(
                key[: i + 1],
                f"is {type(child).__name__} {child!r:.60}, not a table: cannot set {_dotted(key)}",
            )
        node = child
    node[key[-1]] = value


def _check(data: dict[str, Any], source: _Source, secret: frozenset[Key], require_agent: bool) -> TrainConfig:
    for key in data:
        if key not in _TOP_KEYS:
            raise source.error((key,), "unknown key", sorted(_TOP_KEYS))
    trainer = data.get("trainer", {})
    if not isinstance(trainer, dict):
        raise source.error(
            ("trainer",), f"must be a table of Trainer arguments, got {type(trainer).__name__}"
        )
    command = data.get("command", "fit")
    if command not in COMMANDS:
        raise source.error(("command",), f"must be one of {', '.join(map(repr, COMMANDS))}, got {command!r}")
    _make_importable(source.path)
    kwargs = {name: _trainer_arg(name, value, source) for name, value in trainer.items()}
    agent = _agent(data["agent"], source) if "agent" in data else None
    if agent is None and require_agent:
        raise source.error(
            ("agent",), 'is missing: name the agent to train, e.g. agent = "my_module:my_agent"'
        )
    datasets = {
        name: None if data.get(name) is None else _dataset(data[name], (name,), source)
        for name in ("train_dataset", "val_dataset")
    }
    return TrainConfig(
        raw=data,
        trainer_kwargs=kwargs,
        agent=agent,
        train_dataset=datasets["train_dataset"],
        val_dataset=datasets["val_dataset"],
        command=command,
        path=source.path,
        secret_keys=secret,
    )


def _make_importable(path: Path | None) -> None:
    """Put the config file's folder first on ``sys.path`` (and leave it there: the agent's module
    may import its neighbours later, in runner processes too)."""
    folder = str(path.parent.resolve()) if path is not None else None
    if folder is not None and folder not in sys.path:
        sys.path.insert(0, folder)


def _expect(value: Any, types: tuple[type, ...], key: Key, source: _Source) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise source.error(key, f"must be {wanted}, got {type(value).__name__} {value!r:.80}")


def _trainer_arg(name: str, value: Any, source: _Source) -> Any:
    key: Key = ("trainer", name)
    types = _TRAINER_TYPES.get(name)
    if types is None:
        raise source.error(key, "unknown Trainer argument", sorted(_TRAINER_TYPES))
    _expect(value, types, key, source)
    if name in _COMPONENTS:
        return _component(_COMPONENTS[name], value, key, source)
    if name == "initial_resources":
        return {res: _resource(spec, (*key, res), source) for res, spec in value.items()}
    if name == "hooks":
        return [_hook(spec, (*key, i), source) for i, spec in enumerate(value)]
    if name == "rollout_config":
        return _rollout_config(value, key, source)
    if name == "unfinished_rollouts" and value not in ("cancel", "keep"):
        raise source.error(key, f"must be 'cancel' or 'keep', got {value!r}")
    if name in ("n_runners", "max_rollouts", "n_workers") and value < 1:
        raise source.error(key, f"must be a positive integer, got {value!r}")
    return value


def _component(kind: str, spec: Any, key: Key, source: _Source) -> Any:
    """Resolve a spec now, so its mistakes point at its line; runners stay specs (one per worker)."""
    from agentlightning_core.plugins import resolve_component

    if isinstance(spec, dict) and not isinstance(spec.get("type"), str):
        raise source.error(
            key, f"a table spec needs type = NAME (a registered name or 'module:Class'), got {spec!r:.80}"
        )
    if kind in ("runner", "tracer"):
        # The Trainer makes runners per worker and sends the tracer spec to runner processes.
        try:
            resolve_component(kind, spec)
        except Exception as exc:
            raise source.error(key, str(exc)) from exc
        return spec
    try:
        return resolve_component(kind, spec)
    except Exception as exc:
        raise source.error(key, str(exc)) from exc


def _resource(spec: Any, key: Key, source: _Source) -> Any:
    from agentlightning_core.resources import LLM, PromptTemplate, ProxyLLM

    classes: dict[str, type[Any]] = {"llm": LLM, "proxy_llm": ProxyLLM, "prompt_template": PromptTemplate}
    if isinstance(spec, str):  # a bare string is a prompt template
        spec = {"type": "prompt_template", "template": spec}
    _expect(spec, (dict,), key, source)
    kind = spec.get("type")
    if kind not in classes:
        raise source.error(key, f"needs type = one of {', '.join(map(repr, _RESOURCE_TYPES))}, got {kind!r}")
    cls = classes[kind]
    fields = [f.name for f in attrs.fields(cls) if f.name != "resource_type"]
    args = {k: v for k, v in spec.items() if k != "type"}
    for arg in args:
        if arg not in fields:
            raise source.error((*key, arg), f"unknown {kind} field", ["type", *fields])
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise source.error(key, str(exc)) from exc


def _rollout_config(value: dict[str, Any], key: Key, source: _Source) -> Any:
    from agentlightning_core.types import RolloutConfig

    fields = [f.name for f in attrs.fields(RolloutConfig)]
    for arg in value:
        if arg not in fields:
            raise source.error((*key, arg), "unknown RolloutConfig field", fields)
    try:
        return RolloutConfig(**value)
    except (TypeError, ValueError) as exc:
        raise source.error(key, str(exc)) from exc


def _imported(path: Any, key: Key, source: _Source, what: str) -> Any:
    from agentlightning_core.plugins import import_object

    if not isinstance(path, str) or ":" not in path:
        raise source.error(key, f'must name {what} as "module:attribute", got {path!r:.80}')
    try:
        return import_object(path)
    except ImportError as exc:
        hint = f" (the config's folder {source.path.parent} is importable)" if source.path is not None else ""
        raise source.error(key, f"cannot import {path!r}: {exc}{hint}") from exc
    except ValueError as exc:
        raise source.error(key, str(exc)) from exc


def _hook(spec: Any, key: Key, source: _Source) -> Any:
    from agentlightning_core.hooks import Hook

    kwargs: dict[str, Any] = {}
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        spec = spec.get("type")
    obj = _imported(spec, key, source, "a hook class")
    hook = obj(**kwargs) if callable(obj) and not isinstance(obj, Hook) else obj
    if not isinstance(hook, Hook):
        raise source.error(key, f"{spec!r} is not a Hook (subclass agentlightning_core.Hook)")
    return hook


def _agent(spec: Any, source: _Source) -> LitAgent[Any]:
    from agentlightning_core.litagent.base import LitAgent

    obj = _imported(spec, ("agent",), source, "the agent")
    if inspect.isclass(obj) and issubclass(obj, LitAgent):
        obj = obj()
    if not isinstance(obj, LitAgent):
        raise source.error(
            ("agent",),
            f"{spec!r} is {type(obj).__name__}, not an agent: decorate the function with @rollout "
            "or name a LitAgent instance or class",
        )
    return obj


def _dataset(spec: Any, key: Key, source: _Source) -> Sequence[Any]:
    if isinstance(spec, list):
        return spec
    if isinstance(spec, dict):
        call = spec.get("call")
        if call is None:
            raise source.error(
                key, 'a dataset table needs call = "module:function" (its other keys are arguments)', ["call"]
            )
        function = _imported(call, (*key, "call"), source, "the dataset function")
        try:
            data = function(**{k: v for k, v in spec.items() if k != "call"})
        except TypeError as exc:
            raise source.error(key, f"calling {call!r}: {exc}") from exc
        return _sequence(data, key, source, call)
    if not isinstance(spec, str):
        raise source.error(
            key, f'must be a list, a file path, "module:attr" or a table, got {type(spec).__name__}'
        )
    suffix = Path(spec).suffix.lower()
    if suffix in (".jsonl", ".json", ".csv"):
        path = Path(spec)
        if not path.is_absolute() and source.path is not None:
            path = source.path.parent / path
        return _read_dataset(path, suffix, key, source)
    obj = _imported(spec, key, source, 'the dataset (a .jsonl/.json/.csv file or "module:attr")')
    if callable(obj):
        try:
            obj = obj()
        except TypeError as exc:
            raise source.error(
                key, f"calling {spec!r}: {exc}; give its arguments as {{call = {spec!r}, ...}}"
            ) from exc
    return _sequence(obj, key, source, spec)


def _sequence(data: Any, key: Key, source: _Source, origin: str) -> Sequence[Any]:
    if isinstance(data, tuple):
        data = list(data)
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise source.error(key, f"{origin!r} gave {type(data).__name__}, not a list of tasks")
    return data


def _read_dataset(path: Path, suffix: str, key: Key, source: _Source) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise source.error(key, f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if suffix == ".csv":
        return [dict(row) for row in csv.DictReader(text.splitlines())]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise source.error(key, f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise source.error(key, f"{path} must hold a JSON list of tasks, got {type(data).__name__}")
        return data
    tasks: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                tasks.append(json.loads(line))
            except ValueError as exc:
                raise source.error(key, f"{path}:{number} is not a JSON line: {exc}") from None
    return tasks
