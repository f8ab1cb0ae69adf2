"""Config dataclasses as text and JSON: `section.field=value` overrides parsed against each
field's annotated type (so `--optim.lr=abc` fails before anything runs), the JSON round trip, the
fields that differ from their defaults, and one-line field documentation for `--help`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal

from h3_jax.mixers import MixerConfig, default_config, mixer_class, spec_of

SECTIONS = ("task", "model", "optim", "train")


class ConfigError(ValueError):
    """A bad configuration: unknown preset or key, wrong type, impossible combination."""


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass, field name -> type."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(tp)) + "}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "tuple of " + type_name(typing.get_args(tp)[0])
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def parse_value(text: str, tp: Any) -> Any:
    """Parse a command-line string as a value of type `tp`; ValueError if it is not one."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return parse_value(text, arg)
                except ValueError:
                    pass
        raise ValueError(f"expected {type_name(tp)}, got {text!r}")
    if origin is Literal:
        for choice in typing.get_args(tp):
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {type_name(tp)}, got {text!r}")
    if origin is tuple:
        item = typing.get_args(tp)[0]
        body = text.strip().strip("()[]")
        return tuple(parse_value(p.strip(), item) for p in body.split(",") if p.strip())
    if tp is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            # Accept 1e3 or 3140.0 only when they are whole numbers.
            number = float(text)
            if number != int(number):
                raise
            return int(number)
    if tp is float:
        return float(text)
    if tp is str:
        return text
    raise ValueError(f"fields of type {type_name(tp)} cannot be set from the command line")


def parse_override(item: str) -> tuple[str, str, str]:
    """'model.d_model=64' -> ('model', 'd_model', '64'); 'task=mqar' -> ('task', '', 'mqar')."""
    key, sep, value = item.partition("=")
    section, dot, name = key.partition(".")
    if key == "task" and sep:
        return "task", "", value
    if not sep or not dot or not name:
        raise ConfigError(f"override {item!r} is not of the form section.field=value")
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r} in {item!r}; sections: {', '.join(SECTIONS)}")
    return section, name, value


def replace_fields(obj: Any, section: str, updates: dict[str, str]) -> Any:
    """dataclasses.replace with string values parsed against the field types.

    A dotted name sets a field of a nested config ("mixer.d_state"); a mixer field set to a
    spec ("mixer=gss") takes that mixer's defaults, and its dotted fields apply after it.
    """
    types_ = field_types(type(obj))
    plain: dict[str, str] = {}
    nested: dict[str, dict[str, str]] = {}
    for name, text in updates.items():
        head, dot, rest = name.partition(".")
        if head not in types_:
            known = ", ".join(types_)
            raise ConfigError(f"unknown key {section}.{head}; {section} keys: {known}")
        if dot:
            nested.setdefault(head, {})[rest] = text
        else:
            plain[name] = text
    parsed: dict[str, Any] = {}
    for name, text in plain.items():
        current = getattr(obj, name)
        try:
            if isinstance(current, MixerConfig):
                parsed[name] = default_config(text)
            elif dataclasses.is_dataclass(current):
                raise ValueError(f"it is a group of settings; set its fields as "
                                 f"{section}.{name}.FIELD=VALUE")
            else:
                parsed[name] = parse_value(text, types_[name])
        except ValueError as err:
            raise ConfigError(f"bad value for {section}.{name}: {err}") from None
    for name, sub in nested.items():
        current = parsed.get(name, getattr(obj, name))
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{section}.{name} has no fields to set ({section}.{name}.* given)")
        parsed[name] = replace_fields(current, f"{section}.{name}", sub)
    try:
        return dataclasses.replace(obj, **parsed)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {section} settings: {err}") from None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses as dicts (a mixer's settings with its "spec" first), tuples as lists."""
    if isinstance(obj, MixerConfig):
        return {"spec": spec_of(obj), **{f.name: to_jsonable(getattr(obj, f.name))
                                         for f in dataclasses.fields(obj)}}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


def non_default_fields(obj: Any) -> dict[str, Any]:
    """The fields of dataclass `obj` that differ from their declared defaults, JSON-ready.

    Nested dataclasses are compared field by field; fields without a default are always listed.
    A field added to a class later, at its default, leaves the result unchanged.
    """
    out = {"spec": spec_of(obj)} if isinstance(obj, MixerConfig) else {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = non_default_fields(value)
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if default is dataclasses.MISSING or value != default:
            out[f.name] = to_jsonable(value)
    return out


def from_jsonable(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a dataclass from `to_jsonable` output: lists back to tuples, nested configs
    back to their dataclasses (a mixer's by its "spec")."""
    types_ = field_types(cls)
    kwargs = {}
    for name, value in data.items():
        if name not in types_:
            continue
        if isinstance(value, dict) and "spec" in value:
            fields = {k: v for k, v in value.items() if k != "spec"}
            value = from_jsonable(mixer_class(value["spec"]).Config, fields)
        elif isinstance(value, dict) and dataclasses.is_dataclass(types_[name]):
            value = from_jsonable(types_[name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=False)


def field_docs(cls: type) -> dict[str, str]:
    """One-line documentation per field, from the class source (and its dataclass bases'): a
    string literal right after the field, a trailing `# comment`, or a `name: text` line of the
    class docstring."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for line in (cls.__dict__.get("__doc__") or "").splitlines():
        name, sep, text = line.strip().partition(":")
        if sep and name.isidentifier() and text.strip():
            docs[name] = text.strip()
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return docs
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    for node, following in zip(body, body[1:] + [None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        comment = lines[node.lineno - 1].partition("  # ")[2].strip()
        if comment:
            docs[name] = comment
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            if isinstance(following.value.value, str):
                docs[name] = " ".join(following.value.value.split())
    return docs
