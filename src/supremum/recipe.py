"""Recipes: YAML files validated by the typed schema, plus `key=value` overrides.

Precedence: recipe file < command-line flags < key=value overrides (the most specific wins).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from supremum.errors import UserError


def load_yaml(path: str | Path) -> tuple[dict, dict[str, int]]:
    """The recipe as a dict, and the line of every key path (for error messages)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such recipe file", "check the --recipe path")
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text", "save the recipe as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} invalid YAML ({getattr(e, 'problem', e)})",
                        "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a mapping of sections", "see recipes/ for examples")
    return data, _key_lines(node)


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            lines[key] = k.start_mark.line + 1
            lines.update(_key_lines(v, key + "."))
    return lines


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"override '{item}' is not key=value", "write e.g. train.lr=3e-4")
    key, _, raw = item.partition("=")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_path(d: dict, keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        if isinstance(d.get(k), str):  # the shorthand `method: lora`, now given options
            d[k] = {"name": d[k]}
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[keys[-1]] = value


def build(schema: type[BaseModel], data: dict, source: str = "recipe",
          lines: dict[str, int] | None = None, help_cmd: str = "supremum finetune --help",
          names: dict[str, str] | None = None) -> BaseModel:
    """Validate; the first error becomes one line naming the key (or the flag that set it, from
    `names`: key path -> flag), its line and the valid keys."""
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        raise user_error(e, source, lines, help_cmd, names, schema, data) from None


def user_error(e: ValidationError, source: str | None = None, lines: dict[str, int] | None = None,
               help_cmd: str | None = None, names: dict[str, str] | None = None,
               schema: type[BaseModel] | None = None, data: dict | None = None) -> UserError:
    """The one-line form of a validation error: where (flag, or source and line), the key, pydantic's
    statement of the allowed values, and what was given. Every config the CLI builds goes through
    here (`build`, and the CLI's last resort for configs built inside the library)."""
    err = e.errors()[0]
    loc = error_loc(err)
    key = ".".join(loc)
    see = f"; see `{help_cmd}`" if help_cmd else ""
    where = f"{source} line {lines[key]}" if source and lines and key in lines else source or e.title
    if err["type"] == "extra_forbidden" and schema is not None:
        valid = valid_keys(schema, loc[:-1], data or {})
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        return UserError(f"{(names or {}).get(key, where)}: unknown key '{key}'",
                         f"{guess}valid keys{' under ' + '.'.join(loc[:-1]) if loc[:-1] else ''}: "
                         f"{', '.join(valid)}")
    if err["type"] == "union_tag_not_found" and isinstance(err.get("input"), dict):
        return _untagged(err, key, where, names or {}, see)
    msg = with_flags(plain_message(err["msg"]), names or {})
    if names and key in names:
        return UserError(f"{names[key]} {_shown(err.get('input'))}: {msg}", see[2:] or None)
    if not loc or _across_keys(err):  # its message names the keys; the input is all of a (sub)config
        return UserError(f"{where}: {msg}", see[2:] or None)
    return UserError(f"{where}: '{key}': {msg}", f"got {err.get('input')!r}{see}")


def _untagged(err: dict, key: str, where: str, names: dict[str, str], see: str) -> UserError:
    """Options of a config chosen by name (method.r=4) given without the name: which keys exist
    depends on it, so say to name it rather than pydantic's words about a discriminator."""
    tag = err.get("ctx", {}).get("discriminator", "'name'").strip("'")
    flag = names.get(f"{key}.{tag}")
    how = f"pass {flag} NAME (or {key}.{tag}=NAME)" if flag else f"set {key}.{tag}"
    given = ", ".join(f"{key}.{k}" for k in err["input"])
    return UserError(f"{where}: {given} given without {key}.{tag}",
                     f"the keys of {key} depend on which one it is: {how}{see}")


def _across_keys(err: dict) -> bool:
    """A model validator's check across keys of a (nested) config, e.g. train.compile with
    train.checkpoint_every: pydantic gives the whole sub-config as its input, which is no value the
    user typed."""
    return err["type"] in ("value_error", "assertion_error") and isinstance(err.get("input"), dict)


def with_flags(text: str, names: dict[str, str]) -> str:
    """`text` with each config key of `names` (key path -> the flag that set it, e.g.
    "train.precision" -> "--precision") written as that flag: an error names what the user typed.
    Only dotted key paths are replaced, whole (not inside a longer key or word)."""
    for key, flag in names.items():
        if "." in key:
            text = _key_pattern(key).sub(flag, text)
    return text


def names_key(text: str, key: str) -> bool:
    """Whether `text` names the dotted config key `key` whole (as `with_flags` would replace it)."""
    return "." in key and _key_pattern(key).search(text) is not None


def _key_pattern(key: str) -> re.Pattern:
    return re.compile(rf"(?<![\w.-]){re.escape(key)}(?![\w])")


def plain_message(msg: str) -> str:
    """pydantic's message without its own framing: "Value error, " before a validator's words, and
    "after validation" (the user gave values, not a validation step)."""
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg.replace(" after validation", "")


def _shown(value) -> str:
    """A flag's value as the user typed it: a list back to comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def error_loc(err: dict) -> list[str]:
    """The key path of one pydantic error, without the validator and union-tag steps."""
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
    return [p for p in loc if p not in _method_names()]


def valid_keys(schema: type[BaseModel], loc: list[str], data: dict) -> list[str]:
    model: Any = schema
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_of(field.annotation, data.get(part) if isinstance(data, dict) else None)
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return sorted(model.model_fields) if model is not None else []


def _model_of(annotation, value) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    # The method union: pick the member named by `name`.
    from supremum.train.methods import METHODS

    if isinstance(value, str):  # the shorthand `method: lora`
        value = {"name": value}
    if isinstance(value, dict) and value.get("name") in METHODS:
        return METHODS[value["name"]].config_cls
    return None


def _method_names() -> set[str]:
    # Tags of the method union appear in error locations; a schema holding that union has already
    # imported the registry, and one that does not should not pay for importing it (torch).
    methods = sys.modules.get("supremum.train.methods")
    return set(methods.METHODS) if methods else set()
