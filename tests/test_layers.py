"""The layer contract in pyproject.toml ([tool.importlinter]) holds: no module imports a module of
a higher layer, counting imports inside functions."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_layers_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "supremum layers KEPT" in proc.stdout


def test_every_top_level_module_has_a_layer():
    """A module the contract does not name is not checked at all: each one must be placed."""
    import re
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in re.split(r"[|:]", layer)}
    src = ROOT / "src" / "supremum"
    modules = {f"supremum.{p.stem}" for p in src.glob("*.py") if p.stem != "__init__"}
    modules |= {f"supremum.{p.name}" for p in src.iterdir() if (p / "__init__.py").exists()}
    assert modules - named == set()
