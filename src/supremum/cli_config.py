"""From the command line to typed configs: one path for every command, and help from the schema.

An option that sets a config key is declared with `schema_help("train", "epochs")`: that names the
key once, for both its help (the field's description and default, filled in only when help is
shown) and where its value goes (`flag_keys`). `build` then merges recipe < flags < KEY=VALUE
overrides and validates through `recipe.build`, so a bad value from any of them is one line naming
the flag or key and pydantic's statement of the allowed values (exit 2).

Help is computed lazily because the schema imports the method and compressor registries, which
import torch: `supremum --help` and `supremum runs` must not pay for that.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import typing
from pathlib import Path
from typing import Any

from typer.core import TyperCommand

from supremum.errors import UserError

#: schema_help sections and the config model each names ("" is the fine-tuning recipe's top level)
SECTIONS = {"model": "supremum.config:ModelSpec", "data": "supremum.config:DataConfig",
            "train": "supremum.config:TrainConfig", "eval": "supremum.config:EvalConfig",
            "serve": "supremum.serve:ServeConfig", "pick": "supremum.frontier.pick:PickLimits",
            "zeroshot": "supremum.evaluate.zeroshot:ZeroShotConfig",
            "lm_eval": "supremum.lmeval.run:LmEvalConfig",
            "explain": "supremum.explain.config:ExplainConfig",
            "self_training": "supremum.config:SelfTrainingConfig",
            "domain_pretrain": "supremum.config:DomainPretrainConfig",
            "": "supremum.train.config:FinetuneConfig"}
_MARK = re.compile(r"<schema:(\w*)\.(\w+)>")
_EPILOG = re.compile(r"<epilog:(\w+)>")


def schema_help(section: str, field: str) -> str:
    """Help of an option that sets `section.field`: the field's description and default, filled in
    when help is shown. Text may be appended to it."""
    return f"<schema:{section}.{field}>"


def schema_epilog(name: str) -> str:
    """An epilog computed when help is shown: one of `EPILOGS`."""
    return f"<epilog:{name}>"


def flag_keys(command, section: str | None = None) -> dict[str, str]:
    """{option name: key path} for the options of `command` declared with `schema_help` (only
    those of `section`, with the section stripped, when given)."""
    keys = {}
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        for meta in getattr(hint, "__metadata__", ()):
            m = _MARK.search(getattr(meta, "help", None) or "")
            if m and section is None:
                keys[name] = ".".join(p for p in m.groups() if p)
            elif m and m[1] == section:
                keys[name] = m[2]
    return keys


class Assembly:
    """A config being assembled from the command line: recipe < flags < KEY=VALUE overrides,
    remembering which flag set which key so that a bad value is reported under the flag's name."""

    def __init__(self, recipe: Path | None = None) -> None:
        from supremum.recipe import load_yaml

        self.data, self.lines = load_yaml(recipe) if recipe is not None else ({}, None)
        if isinstance(self.data.get("data"), str):  # `data: reviews.csv`, as DataConfig takes it
            self.data["data"] = {"path": self.data["data"]}
        self.source = str(recipe) if recipe is not None else "command line"
        self.names: dict[str, str] = {}

    def set(self, key: str, value: Any, flag: str | None = None) -> None:
        from supremum.recipe import set_path

        set_path(self.data, key.split("."), value)
        if flag:
            self.names[key] = flag

    def options(self, values: dict[str, Any], keys: dict[str, str]) -> Assembly:
        """Set the key of every option in `keys` ({option: key path}) that was given (not None)."""
        for option, key in keys.items():
            if values.get(option) is not None:
                self.set(key, values[option], "--" + option.replace("_", "-"))
        return self

    def overrides(self, items: list[str] | None) -> Assembly:
        from supremum.recipe import parse_override

        for item in items or []:
            path, value = parse_override(item)
            self.set(".".join(path), value)
            self.names.pop(".".join(path), None)
        return self

    def get(self, key: str) -> Any:
        node: Any = self.data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def build(self, schema, help_cmd: str):
        """Validated by `schema`; UserError (one line, exit 2) on the first invalid value."""
        from supremum.recipe import build as validate

        return validate(schema, self.data, self.source, self.lines, help_cmd=help_cmd, names=self.names)


def build(schema, values: dict[str, Any], keys: dict[str, str], *, help_cmd: str,
          recipe: Path | None = None, overrides: list[str] | None = None):
    """The config of `schema` from a recipe file (if any), the option `values` named in `keys`
    ({option: key path}; None = not given) and KEY=VALUE `overrides`."""
    return Assembly(recipe).options(values, keys).overrides(overrides).build(schema, help_cmd)


def finetune_config(values: dict[str, Any], keys: dict[str, str]):
    """The fine-tuning config from the `finetune` command's option values (`keys`: see flag_keys)."""
    from supremum.train.config import FinetuneConfig

    cfg = Assembly(values.get("recipe")).options(values, {**keys, "output": "output"})
    if values.get("method") is not None:
        from supremum.train.methods import METHODS

        if values["method"] not in METHODS:
            raise UserError(f"unknown method '{values['method']}'", f"use one of: {', '.join(METHODS)}")
        if cfg.get("method.name") != values["method"]:
            cfg.set("method", {"name": values["method"]})
    if values.get("track"):
        from supremum.tracking import parse_track

        cfg.set("tracking", {**(cfg.get("tracking") or {}),
                             **parse_track(values["track"]).model_dump(exclude_defaults=True)})
    cfg.overrides(values.get("overrides"))
    if not cfg.get("data.path"):
        raise UserError("no training data given", "pass --data PATH or a recipe with data.path")
    return cfg.build(FinetuneConfig, "supremum finetune --help")


def compress_config(method: str, options: list[str] | None, max_drop: float | None):
    """The typed config of a compression method from its flags and KEY=VALUE options."""
    from supremum.compress import compressors

    known = compressors()
    if method not in known:
        raise UserError(f"unknown compression method '{method}'", f"use one of: {', '.join(known)}")
    cfg = Assembly().options({"max_drop": max_drop}, {"max_drop": "max_drop"}).overrides(options)
    cfg.set("method", method)
    return cfg.build(known[method].config_cls, "supremum compress --help")


# --- help computed from the schema, when it is shown ------------------------------------------

def _schema(section: str):
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)


def default_text(f) -> str:
    """A pydantic field's default as help shows it: "required", or the value, computed by its
    default_factory where it has one (`f.default` is then PydanticUndefined)."""
    return "required" if f.is_required() else str(f.get_default(call_default_factory=True))


def flag_default_text(f) -> str | None:
    """A field's default as a flag takes it: lists comma-separated (as the flag is written),
    strings with whitespace at an end or a control character quoted with escapes (a newline
    otherwise breaks the help line, a space is invisible); None where the description already
    says what an unset value means."""
    if f.is_required():
        return "required"
    value = f.get_default(call_default_factory=True)
    if value is None and "default" in (f.description or ""):
        return None
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, str) and (value != value.strip() or not value.isprintable()):
        return '"' + value.encode("unicode_escape").decode("ascii") + '"'
    return str(value)


@functools.cache
def _field_help(section: str, field: str) -> str:
    f = _schema(section).model_fields[field]
    shown = flag_default_text(f)
    default = "" if shown is None else f" \\[default: {shown}]"  # escaped: rich markup
    return (f.description or "") + default


def resolve_help(text: str | None) -> str | None:
    """`text` with every schema_help / schema_epilog marker replaced by the text it stands for."""
    if not text:
        return text
    text = _MARK.sub(lambda m: _field_help(m[1], m[2]), text)
    return _EPILOG.sub(lambda m: EPILOGS[m[1]](), text)


def keys_epilog() -> str:
    """Every recipe key with its default and meaning, for KEY=VALUE overrides."""
    from supremum import config
    from supremum.train.methods import METHODS

    sections = [("model", config.ModelSpec), ("data", config.DataConfig), ("train", config.TrainConfig),
                ("self_training", config.SelfTrainingConfig), ("domain_pretrain", config.DomainPretrainConfig)]
    sections += [("method", m.config_cls) for m in METHODS.values()]
    lines = ["Recipe keys (set with KEY=VALUE, e.g. train.weight_decay=0.1):",
             f"method.name = full: the method, one of {', '.join(METHODS)}"]
    for prefix, model in sections:
        for key, f in model.model_fields.items():
            if prefix == "method" and key == "name":
                continue
            lines.append(f"{prefix}.{key} = {default_text(f)}: {f.description or ''}")
    return "\n\n".join(lines).replace("[", "\\[")


def compress_epilog() -> str:
    """Every compression method with its options."""
    from supremum.compress import compressors

    lines = ["Methods and their options (set with KEY=VALUE, e.g. keep=[classifier]):"]
    for c in compressors().values():
        opts = [f"{k}={default_text(f)} ({f.description or ''})"
                for k, f in c.config_cls.model_fields.items() if k != "method"]
        lines.append(f"{c.name}: {c.summary}" + ("; " + "; ".join(opts) if opts else ""))
    return "\n\n".join(lines).replace("[", "\\[")


def method_names() -> str:
    """The registered fine-tuning methods (the registry is the one list of them)."""
    from supremum.train.methods import METHODS

    return ", ".join(METHODS)


EPILOGS = {"finetune": keys_epilog, "compress": compress_epilog, "methods": method_names}


class SchemaCommand(TyperCommand):
    """A command whose schema-derived help is filled in only when help is shown."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.params:
            param.help = resolve_help(getattr(param, "help", None))
        self.epilog = resolve_help(self.epilog)
        with _whole_option_names():
            super().format_help(ctx, formatter)


@contextlib.contextmanager
def _whole_option_names():
    """Typer's options table gives a flag pair's negative form (--no-gradient-checkpointing) a
    column of its own, and rich narrows every column alike when the table is too wide, cutting
    long names (--gradient-checkpointi…) at 100 columns. While help renders, its table is one
    whose negative form sits under the positive one and whose name columns never shrink: the
    help text column wraps instead. Typer builds that table from `rich_utils.Table`."""
    import typer.rich_utils as rich_utils
    from rich.table import Table
    from rich.text import Text

    class OptionsTable(Table):
        def add_row(self, *cells, **kwargs) -> None:
            cells = list(cells)
            if len(cells) >= 6:  # [required], long, short, negative long, negative short, type, help
                i = len(cells) - 6
                if str(cells[i + 2]):
                    cells[i] = Text.assemble(cells[i], "\n", cells[i + 2])
                del cells[i + 2]
                if not self.columns:
                    super().add_row(*cells, **kwargs)  # creates the columns
                    for column in self.columns[:-2]:
                        column.no_wrap = True
                    return
            super().add_row(*cells, **kwargs)

    before = rich_utils.Table
    rich_utils.Table = OptionsTable
    try:
        yield
    finally:
        rich_utils.Table = before
