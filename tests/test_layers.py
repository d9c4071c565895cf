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


def _private_imports(path: Path, module: str, root: Path = ROOT) -> list[str]:
    """`from supremum.x import _name` (and `import supremum._x`) in `path`, at any depth, as
    'file:line: from x import _name'; relative imports resolved against `module`."""
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            source, names = "", [a.name for a in node.names]
        else:
            continue
        for name in names:
            full = f"{source}.{name}" if source else name
            private = [p for p in full.split(".") if p.startswith("_") and not p.startswith("__")]
            if full.startswith("supremum.") and private and source != module:
                found.append(f"{path.relative_to(root)}:{node.lineno}: from {source or full} import {name}")
    return found


def test_no_module_imports_another_modules_private_name():
    """A name starting with _ is its module's own: another module that needs it uses a public
    name, so a private function can change without breaking callers it does not know of."""
    src = ROOT / "src"
    bad = []
    for path in sorted((src / "supremum").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        bad += _private_imports(path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert bad == []


def test_the_private_import_scan_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from supremum.lm.data import _files\n    from ..hashing import _h\n"
                     "    from . import _own_package\n    from supremum.lm.data import split_files\n")
    assert _private_imports(probe, "supremum.train.probe", tmp_path) == [
        "probe.py:2: from supremum.lm.data import _files", "probe.py:3: from supremum.hashing import _h",
        "probe.py:4: from supremum.train import _own_package"]


def _cycles(graph) -> list[set[str]]:
    """Strongly connected sets of two or more modules (Kosaraju), imports inside functions counted."""
    modules = sorted(graph.modules)
    succ = {m: graph.find_modules_directly_imported_by(m) for m in modules}
    pred = {m: set() for m in modules}
    for m, out in succ.items():
        for n in out:
            pred[n].add(m)
    order, seen = [], set()
    for root in modules:
        stack = [(root, iter(sorted(succ[root])))] if root not in seen else []
        seen.add(root)
        while stack:
            node, it = stack[-1]
            nxt = next((n for n in it if n not in seen), None)
            if nxt is None:
                order.append(node)
                stack.pop()
            else:
                seen.add(nxt)
                stack.append((nxt, iter(sorted(succ[nxt]))))
    comps, done = [], set()
    for root in reversed(order):
        if root in done:
            continue
        comp, todo = set(), [root]
        done.add(root)
        while todo:
            node = todo.pop()
            comp.add(node)
            fresh = pred[node] - done
            done |= fresh
            todo += sorted(fresh)
        if len(comp) > 1:
            comps.append(comp)
    return comps


def test_no_import_cycle_leaves_its_package():
    """A cycle is allowed only inside one package (a registry: the package imports its members,
    they import the package); one across packages means a shared thing sits a layer too high."""
    import grimp

    graph = grimp.build_graph("supremum")
    packages = {m.rpartition(".")[0] for m in graph.modules}

    def home(module: str) -> str:
        return module if module in packages else module.rpartition(".")[0]

    crossing = [sorted(c) for c in _cycles(graph) if len({home(m) for m in c}) > 1]
    assert crossing == []


def test_names_looked_up_across_layers_resolve():
    """A module that needs one of a higher layer names it as a string (the contract cannot see
    that import): each such name must still point at what the caller expects."""
    import importlib

    import supremum
    from supremum import artifact, backends, config
    from supremum.backends.pytorch import METHOD_STORAGES
    from supremum.config import AdversarialConfig
    from supremum.train.adversarial import AdversarialConfig as OldAdversarialConfig
    from supremum.train.config import FinetuneConfig
    from supremum.train.methods import delta

    assert METHOD_STORAGES == {"delta": "supremum.train.methods.delta"}
    assert importlib.import_module(METHOD_STORAGES["delta"]).load is delta.load
    assert config.FinetuneConfig is FinetuneConfig is supremum.FinetuneConfig
    assert OldAdversarialConfig is AdversarialConfig
    assert artifact.load_artifact_model is backends.load
