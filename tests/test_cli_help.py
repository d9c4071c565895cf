"""Every command's help, as a user sees it: schema-derived defaults rendered as values."""

import re

import pytest
import typer
from conftest import run_cli
from typer.testing import CliRunner

from supremum.cli import app


def command_paths(cmd, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        paths += command_paths(sub, (*path, name))
    return paths


def test_no_help_shows_pydantic_undefined():
    runner = CliRunner()
    paths = command_paths(typer.main.get_command(app))
    assert len(paths) > 10
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
        assert res.exit_code == 0, (path, res.output)
        assert "PydanticUndefined" not in res.output, path
    compress = runner.invoke(app, ["compress", "--help"], env={"COLUMNS": "400"}).output
    # default_factory=list: shown as the value it makes
    assert "int8-dynamic" in compress and "keep=[] (" in compress


def test_flag_defaults_are_written_as_the_flag_takes_them():
    out = CliRunner().invoke(app, ["zeroshot", "--help"], env={"COLUMNS": "400"}).output
    assert "[default: 0,1,2]" in out and "[0, 1, 2]" not in out  # --seeds is comma-separated
    assert '[default: "Review: {text}\\nSentiment:"]' in out  # the newline escaped, not a broken line
    assert '[default: " "]' in out and '[default: "\\n\\n"]' in out
    # unset means what the description says, not "None"
    assert "(default: the label names)\n" in out or "(default: the label names) " in out
    assert "label names) [default: None]" not in out


@pytest.mark.parametrize("columns", ["80", "100"])
def test_help_never_cuts_an_option_name(columns):
    """A flag pair's negative form shares the name column (under the positive one), and name
    columns do not shrink: `--gradient-checkpointing` used to print as `--gradient-checkpointi…`."""
    p = run_cli("finetune", "--help", env={"COLUMNS": columns, "TERMINAL_WIDTH": columns})
    assert p.returncode == 0 and re.findall(r"--[\w-]*…", p.stdout) == []
    lines = p.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("│ --gradient-checkpointing "))
    assert lines[at + 1].startswith("│ --no-gradient-checkpointing ")
    assert max(map(len, lines)) == int(columns)
