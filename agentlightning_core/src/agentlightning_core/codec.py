"""JSON codec for the core's attrs data types.

Each model class gets an encoder and a decoder compiled once from its type hints, so
``to_dict``/``from_dict`` do no reflection per call. Supported field types: JSON scalars,
``Any`` (any JSON value), enums, attrs models, ``list``/``tuple``/``dict[str, X]`` of those,
``X | None`` and unions of models told apart by a ``resource_type`` discriminator.
A hot type may register a hand-written encoder (:func:`register_encoder`) giving the same data.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Self, TypeVar

import attrs

__all__ = ["JsonModel", "from_json_value", "generic_encoder", "register_encoder", "to_json_value"]

T = TypeVar("T")
Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

_encoders: dict[type, Encoder] = {}
_decoders: dict[type, Decoder] = {}


def _identity(value: Any) -> Any:
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


def to_json_value(value: Any) -> Any:
    """Encode any supported value (models, enums, containers) to plain JSON data."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, JsonModel):
        return _encoder_for(type(value))(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    return value


_PLAIN_TYPES = (str, int, float, bool, type(None))


def _is_plain(tp: Any) -> bool:
    """Whether values of type hint ``tp`` are JSON scalars already (encoded as they are)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_is_plain(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return all(isinstance(a, _PLAIN_TYPES) and not isinstance(a, enum.Enum) for a in typing.get_args(tp))
    return tp in _PLAIN_TYPES


def _encoder_for(cls: type) -> Encoder:
    enc = _encoders.get(cls)
    if enc is None:
        enc = _encoders[cls] = generic_encoder(cls)
    return enc


def generic_encoder(cls: type) -> Encoder:
    """The encoder compiled from ``cls``'s fields and type hints (what ``to_dict`` uses unless
    :func:`register_encoder` gave ``cls`` a hand-written one)."""
    hints = typing.get_type_hints(cls)
    # scalar fields are copied as they are; the others go through to_json_value
    plan = [(f.name, _is_plain(hints.get(f.name, Any))) for f in attrs.fields(cls)]

    def enc(obj: Any) -> dict[str, Any]:
        return {
            name: value if plain else to_json_value(value)
            for name, plain in plan
            for value in (getattr(obj, name),)
        }

    return enc


def register_encoder(cls: type, encoder: Encoder) -> None:
    """Encode instances of exactly ``cls`` with ``encoder``, a faster hand-written equivalent
    of :func:`generic_encoder` (for hot types such as spans; it must return the same data)."""
    _encoders[cls] = encoder


def _decoder_for_type(tp: Any, where: str) -> Decoder:
    if tp is Any or tp is typing.Any or tp is object:
        return _identity
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(tp))
        inner = _union_decoder(members, where)
        if nullable:
            return lambda v: None if v is None else inner(v)
        return inner
    if origin is typing.Literal:
        return _identity
    if origin is list or origin is tuple:
        args = typing.get_args(tp)
        item = _decoder_for_type(args[0] if args else Any, where)
        if origin is tuple:
            if item is _identity:
                return lambda v: tuple(_expect(v, list, where))
            return lambda v: () if v == [] else tuple([item(x) for x in _expect(v, list, where)])
        if item is _identity:
            return lambda v: list(_expect(v, list, where))
        return lambda v: [item(x) for x in _expect(v, list, where)]
    if origin is dict:
        args = typing.get_args(tp)
        val = _decoder_for_type(args[1] if args else Any, where)
        if val is _identity:
            return lambda v: dict(_expect(v, dict, where))
        return lambda v: {k: val(x) for k, x in _expect(v, dict, where).items()}
    if isinstance(tp, type):
        if issubclass(tp, JsonModel):
            return lambda v: _decoder_for(tp)(v)
        if issubclass(tp, enum.Enum):
            return tp
        return _identity
    return _identity


def _union_decoder(args: list[Any], where: str) -> Decoder:
    if len(args) == 1:
        return _decoder_for_type(args[0], where)
    models = [a for a in args if isinstance(a, type) and issubclass(a, JsonModel)]
    if models and len(models) == len(args):
        by_tag: dict[str, type] = {}
        for m in models:
            for sub in [m, *_all_subclasses(m)]:
                tag = getattr(sub, "resource_type_tag", None)
                if tag is not None:
                    by_tag[tag] = sub

        def dec(v: Any) -> Any:
            tag = _expect(v, dict, where).get("resource_type")
            cls = by_tag.get(tag)  # type: ignore[arg-type]
            if cls is None:
                raise ValueError(f"{where}: unknown resource_type {tag!r}; expected one of {sorted(by_tag)}")
            return _decoder_for(cls)(v)

        return dec
    return _identity


def _all_subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _expect(value: Any, tp: type[T], where: str) -> T:
    if not isinstance(value, tp):
        raise TypeError(f"{where}: expected a JSON {tp.__name__}, got {type(value).__name__} {value!r:.80}")
    return value


def _decoder_for(cls: type) -> Decoder:
    dec = _decoders.get(cls)
    if dec is None:
        hints = typing.get_type_hints(cls)
        plan = [
            (f.name, f.alias, _decoder_for_type(hints[f.name], f"{cls.__name__}.{f.name}"))
            for f in attrs.fields(cls)
            if f.init
        ]
        name = cls.__name__
        # fields decoded as they are (scalars, Any) skip the per-field call
        plain = [(field_name, alias) for field_name, alias, field_dec in plan if field_dec is _identity]
        decoded = [entry for entry in plan if entry[2] is not _identity]

        def dec(data: Any) -> Any:
            if type(data) is not dict:
                _expect(data, dict, name)
            kwargs = {alias: data[field_name] for field_name, alias in plain if field_name in data}
            for field_name, alias, field_dec in decoded:
                if field_name in data:
                    kwargs[alias] = field_dec(data[field_name])
            return cls(**kwargs)

        _decoders[cls] = dec
    return dec


_hint_decoders: dict[tuple[Any, str], Decoder] = {}


def from_json_value(cls: type[T], data: Any, *, name: str | None = None) -> T:
    """Decode plain JSON data into ``cls``: a model class, or a supported type hint such as
    ``NamedResources`` (``dict[str, LLM | ProxyLLM | PromptTemplate]``), whose errors then
    call the value ``name``."""
    if attrs.has(cls):
        return _decoder_for(cls)(data)  # type: ignore[no-any-return]
    where = name or str(cls)
    dec = _hint_decoders.get((cls, where))
    if dec is None:
        dec = _hint_decoders[(cls, where)] = _decoder_for_type(cls, where)
    return dec(data)  # type: ignore[no-any-return]


class JsonModel:
    """Mixin giving attrs classes a lossless JSON round trip."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict of this object."""
        return _encoder_for(type(self))(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build an instance from :meth:`to_dict` output; invalid values raise ``ValueError``/``TypeError``."""
        return from_json_value(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.from_dict(json.loads(text))
