"""Every command's help, as a user sees it: schema-derived defaults rendered as values."""

import typer
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
