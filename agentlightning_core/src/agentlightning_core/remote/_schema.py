"""JSON Schemas of the core's models and a small compiled validator for request bodies.

:func:`model_schemas` derives one schema per model class from its attrs fields and type
hints (the same hints the codec decodes with), so the OpenAPI description and the server's
input checks come from one source. :func:`compile_schema` turns a schema (the subset used
here: ``type``, ``enum``, ``properties``, ``required``, ``additionalProperties``, ``items``,
``anyOf``, ``minimum``, ``minItems``, ``maxItems``, ``$ref``) into a checker function that raises :class:`SchemaError`
naming the offending location and value.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from agentlightning_core.codec import JsonModel

__all__ = ["Checker", "SchemaError", "compile_schema", "model_schemas", "schema_for_type"]

Schema = dict[str, Any]
Checker = Callable[[Any, str], None]
REF_PREFIX = "#/components/schemas/"


class SchemaError(ValueError):
    """A request value does not match the schema of its field."""


# --- schemas from type hints ---------------------------------------------------------


def schema_for_type(tp: Any, models: dict[str, Schema]) -> Schema:
    """Schema of a type hint; model classes are added to ``models`` and referenced by ``$ref``."""
    if tp is Any or tp is object:
        return {}
    if tp is type(None):
        return {"type": "null"}
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        members = [schema_for_type(a, models) for a in args if a is not type(None)]
        out: Schema = members[0] if len(members) == 1 else {"anyOf": members}
        if nullable:
            if set(out) == {"type"} and isinstance(out["type"], str):
                return {"type": [out["type"], "null"]}
            if "enum" in out:
                return {**out, "enum": [*out["enum"], None]}
            return {"anyOf": [*out.get("anyOf", [out]), {"type": "null"}]}
        return out
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return {"type": "array", "items": schema_for_type(args[0], models) if args else {}}
    if origin is dict:
        args = typing.get_args(tp)
        return {"type": "object", "additionalProperties": schema_for_type(args[1], models) if args else {}}
    if isinstance(tp, type):
        if issubclass(tp, bool):
            return {"type": "boolean"}
        if issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        if issubclass(tp, str):
            return {"type": "string"}
        if issubclass(tp, int):
            return {"type": "integer"}
        if issubclass(tp, float):
            return {"type": "number"}
        if tp is dict:
            return {"type": "object"}
        if tp is list:
            return {"type": "array"}
        if issubclass(tp, JsonModel) and attrs.has(tp):
            _add_model(tp, models)
            return {"$ref": REF_PREFIX + tp.__name__}
    return {}


def _add_model(cls: type, models: dict[str, Schema]) -> None:
    if cls.__name__ in models:
        return
    models[cls.__name__] = {}  # placeholder against recursion
    hints = typing.get_type_hints(cls)
    props: dict[str, Schema] = {}
    required: list[str] = []
    tag = getattr(cls, "resource_type_tag", None)
    for field in attrs.fields(cls):
        if not field.init:
            continue
        if field.name == "resource_type" and tag is not None:
            props[field.name] = {"type": "string", "enum": [tag]}
        else:
            props[field.name] = schema_for_type(hints[field.name], models)
        if field.default is attrs.NOTHING:
            required.append(field.name)
    schema: Schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    if cls.__doc__:
        schema["description"] = cls.__doc__.strip().splitlines()[0]
    models[cls.__name__] = schema


def model_schemas(*classes: type) -> dict[str, Schema]:
    """Schemas of ``classes`` and every model they refer to, by class name."""
    models: dict[str, Schema] = {}
    for cls in classes:
        _add_model(cls, models)
    return models


# --- compiled validation -------------------------------------------------------------
# Inner checkers take only the value and raise ``_Mismatch`` with the path relative to the
# value; parents prepend their key while the error travels up, so paths cost nothing on the
# (common) success path.

_Inner = Callable[[Any], None]


class _Mismatch(Exception):
    def __init__(self, message: str, *, wrong_type: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.wrong_type = wrong_type  # the value is not even of the expected JSON type
        self.path: list[str] = []


def _mismatch(value: Any, expected: str, *, wrong_type: bool = False) -> _Mismatch:
    return _Mismatch(f"expected {expected}, got {type(value).__name__} {value!r:.80}", wrong_type=wrong_type)


def compile_schema(schema: Schema, models: dict[str, Schema]) -> Checker:
    """A function ``check(value, where)`` raising :class:`SchemaError` when ``value`` does not match."""
    inner = _Compiler(models).build(schema)

    def check(value: Any, where: str) -> None:
        try:
            inner(value)
        except _Mismatch as exc:
            raise SchemaError(f"{where}{''.join(reversed(exc.path))}: {exc.message}") from None

    return check


class _Compiler:
    def __init__(self, models: dict[str, Schema]) -> None:
        self.models = models
        self.compiled: dict[str, _Inner] = {}

    def ref(self, name: str) -> _Inner:
        if name not in self.compiled:
            if name not in self.models:
                raise ValueError(f"Schema reference to unknown model {name!r}")
            self.compiled[name] = _noop  # placeholder for recursive models
            self.compiled[name] = self.build(self.models[name])
        compiled = self.compiled

        def check_ref(value: Any) -> None:
            compiled[name](value)

        return check_ref

    def build(self, s: Schema) -> _Inner:
        if "$ref" in s:
            return self.ref(s["$ref"].removeprefix(REF_PREFIX))
        checks: list[_Inner] = []
        if "type" in s:
            checks.append(_type_checker(s["type"]))
        if "enum" in s:
            checks.append(_enum_checker(list(s["enum"])))
        if "minimum" in s:
            checks.append(_minimum_checker(s["minimum"]))
        if "properties" in s or "additionalProperties" in s or "required" in s:
            object_check = self.object_checker(s)
            if object_check is not _noop:
                checks.append(object_check)
        if "items" in s:
            checks.append(_items_checker(self.build(s["items"])))
        if "minItems" in s or "maxItems" in s:
            checks.append(_length_checker(s.get("minItems", 0), s.get("maxItems")))
        if "anyOf" in s:
            checks.append(_any_of_checker([self.build(o) for o in s["anyOf"]]))
        if not checks:
            return _noop
        if len(checks) == 1:
            return checks[0]

        def check_all(value: Any) -> None:
            for c in checks:
                c(value)

        return check_all

    def object_checker(self, s: Schema) -> _Inner:
        properties: dict[str, Schema] = s.get("properties", {})
        # Fields that only need an exact-type check are checked inline (no call per field).
        simple = {k: t for k, v in properties.items() if (t := _simple_types(v)) is not None}
        finite = frozenset(k for k, t in simple.items() if float in t)
        props = {k: self.build(v) for k, v in properties.items() if k not in simple}
        required = tuple(s.get("required", ()))
        extra = s.get("additionalProperties", True)
        extra_check = self.build(extra) if isinstance(extra, dict) and extra else None
        closed = extra is False
        allowed = ", ".join(properties) or "none"
        if not properties and not required and not closed and extra_check is None:
            return _noop  # any object: the "type" check is all there is

        def check_object(value: Any) -> None:
            if type(value) is not dict:
                return  # the "type" check reports non-objects
            for name in required:
                if name not in value:
                    raise _Mismatch(f"missing required field {name!r}")
            for key, v in value.items():
                types = simple.get(key)
                if types is not None:
                    t = type(v)
                    if t in types and (t is not float or key not in finite or math.isfinite(v)):
                        continue
                    check = _type_checker(properties[key]["type"])
                else:
                    check = props.get(key)  # type: ignore[assignment]
                    if check is None:
                        if closed:
                            raise _Mismatch(f"unknown field {key!r}; expected one of: {allowed}")
                        if extra_check is None:
                            continue
                        check = extra_check
                try:
                    check(v)
                except _Mismatch as exc:
                    exc.path.append(f".{key}")
                    raise

        return check_object


def _simple_types(schema: Schema) -> frozenset[type] | None:
    """The Python types a schema allows when an exact-type check is all it asks, else None."""
    if "type" not in schema or not set(schema) <= {"type", "description", "additionalProperties"}:
        return None
    if schema.get("additionalProperties", {}) not in ({}, True):
        return None
    names = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
    if any(n not in _PY_TYPES for n in names):
        return None
    return frozenset(t for n in names for t in _PY_TYPES[n])


def _noop(value: Any) -> None:
    return None


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _type_checker(names: str | list[str]) -> _Inner:
    """Exact-type check (JSON decoding yields exact types, so ``bool`` never passes as a number)."""
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in _PY_TYPES]
    if unknown:
        raise ValueError(f"Unsupported JSON schema type {unknown[0]!r}")
    allowed = frozenset(t for n in names for t in _PY_TYPES[n])
    expected = " or ".join(names)
    finite = "number" in names

    def check_type(value: Any) -> None:
        t = type(value)
        if t not in allowed:
            raise _mismatch(value, expected, wrong_type=True)
        if finite and t is float and not math.isfinite(value):
            raise _mismatch(value, "a finite number")

    return check_type


def _enum_checker(allowed: list[Any]) -> _Inner:
    expected = "one of " + ", ".join(repr(a) for a in allowed)

    def check_enum(value: Any) -> None:
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise _mismatch(value, expected)

    return check_enum


def _minimum_checker(minimum: float) -> _Inner:
    def check_minimum(value: Any) -> None:
        if type(value) in (int, float) and value < minimum:
            raise _mismatch(value, f"a number >= {minimum}")

    return check_minimum


def _length_checker(least: int, most: int | None) -> _Inner:
    expected = (
        f"exactly {least} items"
        if least == most
        else f"{least} to {most if most is not None else 'any number of'} items"
    )

    def check_length(value: Any) -> None:
        if type(value) is list and (len(value) < least or (most is not None and len(value) > most)):
            raise _mismatch(value, expected)

    return check_length


def _items_checker(item: _Inner) -> _Inner:
    def check_items(value: Any) -> None:
        if type(value) is list:
            for i, v in enumerate(value):
                try:
                    item(v)
                except _Mismatch as exc:
                    exc.path.append(f"[{i}]")
                    raise

    return check_items


def _any_of_checker(options: list[_Inner]) -> _Inner:
    def check_any_of(value: Any) -> None:
        errors: list[_Mismatch] = []
        for opt in options:
            try:
                opt(value)
                return
            except _Mismatch as exc:
                errors.append(exc)
        # Report the one form of the right type when there is one (e.g. a bad config, not "not null").
        near = [e for e in errors if e.path or not e.wrong_type]
        if len(near) == 1:
            raise near[0]
        forms = "; ".join(f"{''.join(reversed(e.path))} {e.message}".strip() for e in errors)
        raise _Mismatch(f"matches none of the allowed forms ({forms})")

    return check_any_of
