"""Recipes: YAML files validated by the typed schema, plus `key=value` overrides.

Precedence: recipe file < command-line flags < key=value overrides (the most specific wins).
"""

from __future__ import annotations

import difflib
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
          lines: dict[str, int] | None = None, help_cmd: str = "supremum finetune --help") -> BaseModel:
    """Validate; the first error becomes one line naming the key, its line and the valid keys."""
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        loc = [p for p in loc if p not in _method_names()]
        key = ".".join(loc)
        where = f"{source} line {lines[key]}" if lines and key in lines else source
        if err["type"] == "extra_forbidden":
            valid = valid_keys(schema, loc[:-1], data)
            close = difflib.get_close_matches(loc[-1], valid, n=1)
            guess = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"{where}: unknown key '{key}'",
                            f"{guess}valid keys{' under ' + '.'.join(loc[:-1]) if loc[:-1] else ''}: "
                            f"{', '.join(valid)}") from None
        raise UserError(f"{where}: '{key}': {err['msg']}",
                        f"got {err.get('input')!r}; see `{help_cmd}`") from None


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
    from supremum.train.methods import METHODS

    return set(METHODS)
