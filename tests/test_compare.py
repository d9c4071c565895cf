"""Method comparison: cells in their own processes, mean +- std over seeds, noise notes, reuse."""

import json

import pytest
from conftest import run_cli

from supremum.compare import CompareConfig, cells, summarize
from supremum.config import DataConfig, TrainConfig
from supremum.store import Store


def recipe(data):
    return {"name": "t", "model": {"name": "tiny-bert"}, "data": {"path": str(data)},
            "train": {"max_steps": 6, "batch_size": 8, "lr": 3e-3},
            "methods": ["full", {"label": "lora-fgm", "method": {"name": "lora"},
                                 "train": {"adversarial": {"method": "fgm"}}}],
            "seeds": [0, 1], "evaluate": {"splits": ["dev", "test"], "perturb": "typo:0.1"}}


def test_compare_cli_runs_cells_summarizes_and_reuses(csv_data, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(recipe(csv_data)))
    dry = json.loads(run_cli("compare", str(path), "--dry-run", "--json", check=True).stdout)
    assert [(d["variant"], d["seed"], d["status"]) for d in dry] == [
        ("full", 0, "to run"), ("full", 1, "to run"), ("lora-fgm", 0, "to run"), ("lora-fgm", 1, "to run")]
    s = json.loads(run_cli("compare", str(path), "--json", check=True).stdout)
    rows = {r["variant"]: r for r in s["rows"]}
    assert set(rows) == {"full", "lora-fgm"} and s["cells"] == 4 and s["cached_cells"] == 0
    for r in rows.values():
        assert r["dev"]["n"] == 2 and r["test"]["std"] is not None and 0 <= r["test"]["mean"] <= 1
        assert "typo:0.1" in r and r["peak_rss_mb"] > 0 and r["train_seconds"]["median"] > 0
    assert rows["lora-fgm"]["trainable_fraction"] < rows["full"]["trainable_fraction"] == 1.0
    assert sorted(r["note"] == "best" for r in rows.values()) == [False, True]
    finetunes = [r for r in Store().runs() if r["kind"] == "finetune"]
    assert len(finetunes) == 4  # the cells' runs are in the store
    (cmp,) = [r for r in Store().runs() if r["kind"] == "compare"]
    assert cmp["status"] == "finished" and len(cmp["metrics"]["rows"]) == 2

    again = run_cli("compare", str(path), check=True)
    assert "4 of 4 cells reused" in again.stdout and "lora-fgm" in again.stdout
    bad = recipe(csv_data)
    bad["methods"] = ["full", "full"]
    path.write_text(json.dumps(bad))
    out = run_cli("compare", str(path))
    assert out.returncode == 2 and "distinct label" in out.stderr


def test_grid_crosses_every_variant(csv_data):
    cfg = CompareConfig.model_validate({**recipe(csv_data), "grid": {"train.lr": [1e-3, 3e-3]}, "seeds": [5]})
    got = [(c["variant"], c["config"]["train"]["lr"], c["config"]["train"]["seed"]) for c in cells(cfg)]
    assert got == [("full lr=0.001", 1e-3, 5), ("full lr=0.003", 3e-3, 5),
                   ("lora-fgm lr=0.001", 1e-3, 5), ("lora-fgm lr=0.003", 3e-3, 5)]
    assert len({c["hash"] for c in cells(cfg)}) == 4


def test_noise_notes_follow_welch():
    cfg = CompareConfig.model_validate({"name": "n", "data": {"path": "x.csv"}, "methods": ["a", "b", "c"],
                                        "evaluate": {"splits": ["test"]}})

    def res(variant, accs):
        return [{"variant": variant, "method": variant, "seed": i, "accuracy": {"test": a}, "cached": False,
                 "trainable_params": 1, "trainable_fraction": 1.0, "train_seconds": 1.0, "peak_rss_mb": 1.0}
                for i, a in enumerate(accs)]

    s = summarize(res("a", [0.90, 0.91, 0.92]) + res("b", [0.905, 0.90, 0.915]) + res("c", [0.70, 0.71, 0.72]),
                  cfg)
    notes = {r["variant"]: r["note"] for r in s["rows"]}
    assert notes["a"] == "best" and notes["b"].startswith("within noise of a")
    assert notes["c"].startswith("below a")
    assert {r["variant"]: r["test"]["std"] for r in s["rows"]}["a"] == pytest.approx(0.01)


def test_report_shows_the_latest_comparison(csv_data, tmp_path):
    from conftest import evaluated_pair

    from supremum.frontier.report import build, markdown, render_html

    evaluated_pair(csv_data, tmp_path, "fp16")
    cfg = CompareConfig.model_validate({"name": "methods", "data": {"path": "x.csv"}, "methods": ["full", "lora"],
                                        "evaluate": {"splits": ["test"]}})
    rows = [{"variant": v, "method": v, "seed": i, "accuracy": {"test": a + i / 100}, "cached": False,
             "trainable_params": 10, "trainable_fraction": 0.5, "train_seconds": 2.0, "peak_rss_mb": 3.0}
            for v, a in (("full", 0.9), ("lora", 0.8)) for i in range(3)]
    store = Store()
    store.start_run("c1", "compare", "", {}, {})
    store.finish_run("c1", summarize(rows, cfg))
    rep = build(store)
    md, page = markdown(rep), render_html(rep)
    assert "## Method comparison methods" in md and "| lora | 81.00 ± 1.00 |" in md
    assert "Method comparison methods" in page and "<td>below full (p=" in page


def test_shipped_compare_recipes_validate(monkeypatch):
    from pathlib import Path

    from supremum.recipe import build, load_yaml

    monkeypatch.setenv("SUPREMUM_DATA", "/data")
    paths = sorted((Path(__file__).parent.parent / "recipes" / "compare").glob("*.yaml"))
    assert paths
    for p in paths:
        raw, lines = load_yaml(p)
        cfg = build(CompareConfig, raw, str(p), lines)
        assert cfg.data.path.startswith("/data/") and len(cells(cfg)) == len(cfg.methods) * len(cfg.seeds)


@pytest.mark.parametrize(("override", "dry"), [("data", True), ("data", False), ("train", False),
                                               ("method", True)])
def test_a_bad_key_in_the_last_variant_stops_compare_before_any_cell_runs(csv_data, tmp_path, dry, override):
    r = recipe(csv_data)
    last = {"label": "late", "method": {"name": "lora"}}
    last[override] = {**last.get(override, {}), "trian_limit": 50}
    r["methods"] = [*r["methods"], last]
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(r))
    proc = run_cli("compare", str(path), *(["--dry-run"] if dry else []))
    valid = {"data": "valid keys under data: " + ", ".join(sorted(DataConfig.model_fields)),
             "train": "valid keys under train: " + ", ".join(sorted(TrainConfig.model_fields)),
             "method": "valid keys under method: alpha, dora, dropout, merge, name, r, rslora, target_modules"}
    guess = "did you mean 'train_limit'? " if override == "data" else ""
    assert (proc.returncode, proc.stderr) == (
        2, f"error: compare variant 'late': unknown key '{override}.trian_limit' ({guess}{valid[override]})\n")
    assert Store().runs() == [] and not (Store().root / "compare").exists()  # no cell ran


def test_a_cached_cell_evaluated_on_other_splits_runs_again(tmp_path):
    """The cell hash is the fine-tune's alone: a study asking for the dev split must not read a
    cached result that holds test only (it raised KeyError; now the cell runs again)."""
    import json

    from supremum.compare import _drop_without_splits

    said = []
    for metric in ("accuracy", "perplexity"):
        r = tmp_path / metric / "result.json"
        r.parent.mkdir()
        r.write_text(json.dumps({metric: {"test": 0.8}}))
        _drop_without_splits(r, ["test"], said.append)
        assert r.exists() and said == []
        _drop_without_splits(r, ["dev", "test"], said.append)
        assert not r.exists()
        assert said.pop() == f"{metric}: the cached cell was not evaluated on dev; running it again"
    _drop_without_splits(tmp_path / "none" / "result.json", ["dev"], said.append)  # nothing cached: nothing said
    assert said == []
