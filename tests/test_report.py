"""The report's answer block, ties, scope, figure labels and escaping, on stores built from
hand-made evaluation records (no training)."""

import pytest
from conftest import run_cli

from supremum.errors import UserError
from supremum.frontier.report import build, markdown, render_html, write_report
from supremum.limit.resolution import resolution
from supremum.store import Store

# (name, lineage, accuracy, batch-1 ms, size MB): a demo-like pipeline
DEMO = [("full", "full", 0.9120, 21.0, 255.0), ("lora", "lora", 0.9105, 20.0, 255.0),
        ("fp16", "full>fp16", 0.9118, 19.0, 128.0), ("lora-onnx", "lora>onnx-int8-dynamic", 0.9074, 2.84, 67.1),
        ("full-int8", "full>int8-dynamic", 0.9000, 9.0, 130.0), ("prune", "full>prune-heads", 0.8800, 14.0, 200.0),
        ("prune-onnx", "full>prune-heads+onnx-int8-dynamic", 0.8750, 2.2, 55.0)]


def record(store: Store, stage: str, lineage: str, acc: float, ms: float, mb: float, *,
           pipeline: str | None = "demo", n: int | None = 872, split: str = "dev",
           extra: dict | None = None) -> str:
    """An artifact (in pipeline `pipeline`'s stage directory, or loose) and its finished eval run
    (metrics `extra` added to the record)."""
    art = f"{stage}-{pipeline}-art"
    where = f"pipelines/{pipeline}/{stage}-0a1b2c3d" if pipeline else f"artifacts/{art}"
    store.add_artifact(art, str(store.root / where), None, "text-classification", "tiny", lineage.split(">")[0])
    m = {"artifact": art, "lineage": lineage, "data": "/data/sst2.csv", "split": split, "accuracy": acc,
         "size_on_disk_mb": mb, "machine": {"cpu": "cpu A"},
         "cost": {"latency_b1": {"with_tokenization": {"median_ms": ms}}, "peak_rss_mb": 3 * mb, "params": 1000},
         **({"examples": n} if n else {}), **(extra or {})}
    run = f"eval-{art}-{split}"
    store.start_run(run, "eval", f"eval {art}", {}, {"cpu": "cpu A"}, parents=[art])
    store.finish_run(run, m)
    return art


def demo_store(n: int | None = None) -> Store:
    store = Store()
    for row in DEMO:
        record(store, *row, n=n)
    return store


def test_the_answer_names_best_smallest_and_fastest_within_one_point():
    rep = build(demo_store())  # no n recorded: no interval, no resolution, no ties
    got = [(a.role, a.row["artifact"], a.sentence, a.ties) for a in rep["answers"]]
    assert got == [
        ("Best", "full-demo-art", "full fine-tune: the baseline, accuracy 91.20%", []),
        # within 1 pt of 91.20: full, lora, fp16, lora-onnx (90.74); smallest and fastest is lora-onnx
        ("Smallest and fastest within 1 pt of the best", "lora-onnx-demo-art",
         "LoRA fine-tune → ONNX Runtime int8 (dynamic): 7.4× faster at batch 1, 3.8× smaller, −0.46 pt accuracy "
         "(90.74%) vs full", [])]
    store = demo_store()  # a smaller variant that is slower splits the two
    record(store, "tiny", "full>int4-weight", 0.9030, 12.0, 40.0)
    got = [(a.role, a.row["artifact"]) for a in build(store)["answers"]]
    assert got == [("Best", "full-demo-art"), ("Smallest within 1 pt of the best", "tiny-demo-art"),
                   ("Fastest within 1 pt of the best", "lora-onnx-demo-art")]
    page = render_html(rep)
    assert page.index("Which variant to ship") < page.index("<svg")  # the answer comes first
    assert "7.4× faster at batch 1, 3.8× smaller, −0.46 pt accuracy" in page


def test_budgets_pick_within_them_or_say_none_does():
    store = demo_store()
    one = build(store, budgets={"max_latency_ms": 10.0, "max_size_mb": 150.0})["answers"]
    assert [(a.role, a.row["artifact"]) for a in one] == [
        ("Recommended under 10 ms at batch 1, 150 MB", "lora-onnx-demo-art")]  # 90.74 beats int8's 90.00
    drop = build(store, budgets={"max_drop": 0.2})["answers"]  # floor 91.00: full, lora, fp16; best is full
    assert [(a.role, a.row["artifact"]) for a in drop] == [
        ("Recommended under at most 0.2 pt below the best", "full-demo-art")]
    both = build(store, budgets={"max_drop": 0.2, "max_latency_ms": 19.5})["answers"]
    assert both[0].row["artifact"] == "fp16-demo-art"
    none = build(store, budgets={"max_latency_ms": 1.0})["answers"]
    assert none[0].role == "Nothing meets 1 ms at batch 1"
    assert none[0].sentence.startswith("no variant meets max_latency_ms; the baseline is full fine-tune")
    with pytest.raises(UserError, match="a drop is not negative"):
        build(store, budgets={"max_drop": -1.0})


def test_differences_below_the_resolution_are_ties():
    rep = build(demo_store(n=872))
    pt = 100 * resolution(872, 0.912)  # 2.66 pt from 872 examples at 91.2%, errors independent
    assert rep["resolution"] == pytest.approx(pt)
    best = rep["answers"][0]
    # within 2.66 pt of 91.20: lora (0.15), fp16 (0.02), lora-onnx (0.46), int8 (1.20); not prune (3.20)
    assert best.row["artifact"] == "full-demo-art"
    assert best.ties == ["lora-onnx", "fp16", "lora", "full-int8"]
    assert "accuracy 91.20% [89.1–92.9]" in best.sentence  # Wilson 95% over 872 examples
    page = render_html(rep)
    assert page.count('<tr class="tie"') == 4
    assert "Tied within the split's resolution (2.7 pt) with lora-onnx, fp16, lora, full-int8" in page
    md = markdown(rep)
    assert "| * ≈ | lora-onnx |" in md and "|  | prune |" in md and "0.9120 [0.891, 0.929]" in md


def test_scope_keeps_only_the_named_pipelines_runs(monkeypatch):
    store = demo_store()
    record(store, "big", "full", 0.95, 40.0, 400.0, pipeline="other")
    record(store, "loose", "full", 0.96, 40.0, 400.0, pipeline=None)
    monkeypatch.setenv("SUPREMUM_EXPERIMENT", "ablation")
    record(store, "tagged", "full", 0.97, 40.0, 400.0, pipeline=None)
    monkeypatch.delenv("SUPREMUM_EXPERIMENT")

    def arts(**scope):
        res = build(store, **scope)["main"]
        return sorted(r["artifact"] for r in res["frontier"] + res["dominated"])

    assert arts(pipeline="demo") == sorted(f"{r[0]}-demo-art" for r in DEMO)
    assert arts(pipeline="other") == ["big-other-art"]
    assert arts(experiment="other") == ["big-other-art"]  # the pipeline's name by default
    assert arts(experiment="ablation") == ["tagged-None-art"]
    assert len(arts()) == len(DEMO) + 3
    assert arts(since="2000-01-01") == arts()
    with pytest.raises(UserError) as e:
        build(store, since="2999-01-01")
    assert str(e.value) == ("no run in the store matches since 2999-01-01 (see `supremum runs`; runs started "
                            "on or after that date)")
    with pytest.raises(UserError) as e:
        build(store, since="yesterday")
    assert str(e.value) == "--since: 'yesterday' is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
    assert "report: pipeline demo" in render_html(build(store, pipeline="demo"))


def test_no_point_label_leaves_the_figure():
    from supremum.frontier import frontier
    from supremum.frontier.answer import baseline
    from supremum.frontier.figures import frontier_axes

    store = Store()  # ten variants crowded in one corner, long names, one at each extreme
    for i in range(10):
        record(store, f"a-rather-long-stage-name-{i}", "full>int8-dynamic" if i % 2 else "lora", 0.90 + i / 2000,
               5.0 + i / 10, 100.0 + i, n=500)
    record(store, "extreme-right-and-lowest", "full>fp16", 0.70, 500.0, 10.0, n=500)
    res = frontier(store=store)
    base = baseline(res["frontier"], "accuracy")
    fig, titles, caption = frontier_axes(res, "batch-1 latency (ms)", "t", 2.0, base)
    fig.canvas.draw()
    frame, box = fig.bbox, fig.axes[0].get_window_extent()
    labels = [t for t in fig.axes[0].texts]
    assert len(labels) == 11
    for t in labels:
        e = t.get_window_extent()
        assert frame.x0 <= e.x0 and e.x1 <= frame.x1 and frame.y0 <= e.y0 and e.y1 <= frame.y1, t.get_text()
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, t.get_text()
    assert len(titles) == 11 and caption.endswith("ring: the baseline.") and "logarithmic" in caption


def test_html_escapes_names_and_hover_titles(tmp_path):
    store = Store()
    record(store, "ok", "full", 0.9, 10.0, 100.0, n=100)
    record(store, "x<script>alert(1)<&>", "full>fp16", 0.8, 5.0, 50.0, n=100)
    out = write_report(tmp_path / "r.html", store=store)
    page = out.read_text()
    assert "<script" not in page and "x&lt;script&gt;alert(1)&lt;&amp;&gt;" in page
    assert page.count("<title>") == 1 + 3 * 2  # the page's, and one per point in each of 3 frontier plots
    figs = sorted(p.name for p in (tmp_path / "r-figures").iterdir())
    assert figs == [f"frontier-{c}.{x}" for c in ("latency_b1", "memory", "size") for x in ("png", "svg")]


def test_report_cli_takes_budgets_and_scope(tmp_path):
    store = demo_store()
    assert store.root.exists()
    run_cli("report", "--format", "md", "--output", str(tmp_path / "r.md"), "--max-latency-ms", "10",
            "--pipeline", "demo", check=True)
    md = (tmp_path / "r.md").read_text()
    assert "- **Recommended under 10 ms at batch 1: lora-onnx** (`lora-onnx-demo-art`)" in md
    bad = run_cli("report", "--pipeline", "nope")
    assert bad.returncode == 2 and "no run in the store matches pipeline nope" in bad.stderr


def test_ema_smooths_from_the_first_value():
    from supremum.frontier.figures import ema

    assert ema([0.0, 10.0, 10.0], span=3) == [0.0, 5.0, 7.5]  # alpha = 2 / (3 + 1)


def test_training_curves_are_named_by_stage_and_mark_the_kept_checkpoint():
    from supremum.frontier.figures import curves_figure
    from supremum.frontier.report import run_names

    store = Store()
    out = store.root / "pipelines" / "demo" / "classify-0a1b2c3d"
    cfg = {"method": {"name": "lora"}, "model": {"name": "tiny-bert"}, "output": str(out)}
    curve = [{"step": s, "loss": 1.0 / s} for s in range(1, 41)]
    evals = [{"step": s, "dev_accuracy": a} for s, a in ((10, 0.7), (20, 0.8), (30, 0.75))]
    store.start_run("ft1", "finetune", "finetune", cfg, {})
    store.finish_run("ft1", {"loss_curve": curve, "evals": evals, "best_step": 20}, "a1", str(out))
    store.start_run("ft2", "finetune", "finetune", {**cfg, "output": None, "method": {"name": "full"}}, {})
    store.finish_run("ft2", {"loss_curve": curve}, "a2", str(store.root / "artifacts" / "a2"))
    names = run_names(store)
    assert names == {"ft1": "classify (LoRA fine-tune)", "ft2": "full fine-tune of tiny-bert"}
    fig = curves_figure(store.runs(), names)
    assert '<g id="curves-curves-r0"><title>classify (LoRA fine-tune): run ft1, finetune</title>' in fig.svg
    assert "<title>kept checkpoint: step 20, dev accuracy 0.8</title>" in fig.svg  # the best eval, not the last
    assert "★ the checkpoint kept" in fig.caption


def test_what_a_step_bought_is_named_by_the_cost_compared(monkeypatch):
    """A frontier over size (no latency measured) says how much smaller, never 'x at batch 1'."""
    from supremum.frontier import report

    def row(art, lineage, acc, lat, size):
        return {"artifact": art, "lineage": lineage, "path": f"/x/{art}", "metrics": {"accuracy": acc},
                "costs": {"latency_b1": lat, "size": size}}

    parent, child = row("p", "full", 0.90, 10.0, 80.0), row("c", "full>int8-dynamic", 0.895, 5.0, 60.0)
    monkeypatch.setattr(report, "_parent_id", lambda path: "p" if path == "/x/c" else None)
    res = {"frontier": [child, parent], "dominated": [], "metric": "accuracy"}
    assert report.bought({**res, "cost": "size"}) == [
        "int8-dynamic (on full) bought 1.3x smaller at -0.50 pt accuracy"]
    assert report.bought({**res, "cost": "latency_b1"}) == [
        "int8-dynamic (on full) bought 2.00x at batch 1 and 1.3x smaller at -0.50 pt accuracy"]


def test_a_temperature_step_buys_no_speed(monkeypatch):
    """Timing noise between a parent and its calibrated child (the same weights) is not a gain."""
    from supremum.frontier import report

    def row(art, lineage, lat, ece):
        return {"artifact": art, "lineage": lineage, "path": f"/x/{art}",
                "metrics": {"accuracy": 0.9, "ece": ece}, "costs": {"latency_b1": lat, "size": 80.0}}

    parent, child = row("p", "full", 10.2, 0.05), row("c", "full>temperature", 10.0, 0.01)
    monkeypatch.setattr(report, "_parent_id", lambda path: "p" if path == "/x/c" else None)
    res = {"frontier": [child, parent], "dominated": [], "metric": "accuracy", "cost": "latency_b1"}
    assert report.bought(res) == ["temperature (on full) bought no cost change (the same weights) at +0.00 pt "
                                  "accuracy, ECE 5.00% -> 1.00%"]
