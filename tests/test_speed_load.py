"""Every speed measurement records the machine's load; a ratio from a busy machine says so."""

import json
import os

import pytest
from conftest import run_cli

from supremum import cli_render
from supremum.frontier.answer import sentence
from supremum.machine import BUSY_MARGIN, SPREAD_LIMIT, busy, busy_caveat, load_during, mark_spread

IDLE = {"load_1m": 0.4, "cores": 2, "busy": False}
LOADED = {"load_1m": 3.1, "cores": 2, "busy": True}


def test_load_during_records_the_1_minute_load_and_the_cores():
    with load_during() as rec:
        assert rec == {"cores": os.cpu_count()}  # filled in when the block ends
    assert rec["cores"] == os.cpu_count() and isinstance(rec["load_1m"], float) and rec["load_1m"] >= 0
    assert rec["busy"] == (rec["load_1m"] > rec["cores"] + BUSY_MARGIN)


@pytest.mark.parametrize("before,after,busy_", [(0.3, 2.2, False), (0.3, 2.6, True), (3.0, 1.0, True)])
def test_busy_means_load_beyond_the_timings_own_threads(monkeypatch, before, after, busy_):
    """On an idle 2-core machine a timing on both cores reads about 2 afterwards: not busy; one more
    runnable thread of other work (before or after) is."""
    reads = iter([(before, 0, 0), (after, 0, 0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(reads))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with load_during() as rec:
        pass
    assert rec == {"cores": 2, "load_1m": max(before, after), "busy": busy_}


def test_busy_caveat_names_each_loaded_side():
    assert busy(IDLE) is None and busy(None) is None and busy({"load_1m": 1.0, "cores": 2}) is None
    assert busy(LOADED) == "load 3.10 on 2 cores"
    assert busy_caveat(**{"this run": IDLE, "parent": IDLE}) is None
    assert busy_caveat(**{"this run": IDLE, "parent": None}) is None  # a record from before loads were kept
    assert busy_caveat(**{"this run": IDLE, "parent": LOADED}) == (
        "machine busy while timing (parent: load 3.10 on 2 cores): not a clean ratio")
    assert busy_caveat(**{"this run": {**LOADED, "load_1m": 2.5}, "parent": LOADED}) == (
        "machine busy while timing (this run: load 2.50 on 2 cores; parent: load 3.10 on 2 cores): "
        "not a clean ratio")


def test_a_wide_spread_marks_a_timing_busy_the_load_average_missed():
    """The tryout's case: load 2.35 on 2 cores (not busy by load) with a p95 78x the median."""
    rec = {"cores": 2, "load_1m": 2.35, "busy": False}
    mark_spread(rec, median=1.0, p95=2.0)
    assert rec == {"cores": 2, "load_1m": 2.35, "busy": False, "p95_over_median": 2.0} and busy(rec) is None
    mark_spread(rec, median=2.0, p95=156.0)
    assert rec["p95_over_median"] == 78.0 and rec["busy"] is True
    assert busy(rec) == "p95 78.0x the median"
    mark_spread(rec, median=1.0, p95=1.5)  # a later steady timing keeps the widest spread
    assert rec["p95_over_median"] == 78.0 and rec["busy"] is True
    both = {**LOADED, "p95_over_median": SPREAD_LIMIT + 1}
    assert busy(both) == "load 3.10 on 2 cores; p95 4.0x the median"
    assert busy_caveat(parent=rec) == "machine busy while timing (parent: p95 78.0x the median): not a clean ratio"


def _lat(ms: float, batch: int) -> dict:
    t = {"median_ms": ms, "p95_ms": ms}
    return {"batch_size": batch, "model_only": t, "with_tokenization": t, "throughput_per_s": 1.0}


def test_printed_speed_up_carries_the_caveat(capsys):
    m = {"cost": {"params": 10, "weights_mb": 1.0, "peak_rss_mb": 100.0, "threads": 2, "method": "m",
                  "latency_b1": _lat(6.0, 1), "latency_b32": _lat(14.0, 32), "load": LOADED},
         "size_on_disk_mb": 1.0, "runtime": {"kernels": "PyTorch eager", "isa": ["avx2"]},
         "vs_parent": {"parent": "p1", "speedup_b1": 78.0, "speedup_b32": 2.5, "accuracy_delta_pt": 0.0,
                       "why_b1": "int8 kernels need VNNI", "why_b32": None,
                       "busy": busy_caveat(**{"this run": LOADED, "parent": IDLE})}}
    cli_render._print_cost(m)
    lines = capsys.readouterr().out.splitlines()
    assert ("note: the machine was busy while timing (load 3.10 on 2 cores): the latencies above include "
            "waiting for other work; time again on an idle machine") in lines
    assert ("vs parent p1: 78.00x at batch 1, 2.50x at batch 32 (machine busy while timing (this run: load 3.10 "
            "on 2 cores): not a clean ratio), accuracy +0.00 pt") in lines
    assert not any("no speed-up" in line for line in lines)  # a busy ratio says nothing about kernels


def test_frontier_sentence_carries_the_caveat():
    base = {"artifact": "a", "lineage": "full", "path": None, "metrics": {"accuracy": 0.9},
            "costs": {"latency_b1": 10.0, "size": 40.0}, "load": LOADED}
    row = {"artifact": "b", "lineage": "full>int8-dynamic", "path": None, "metrics": {"accuracy": 0.9},
           "costs": {"latency_b1": 5.0, "size": 10.0}, "load": IDLE}
    assert sentence(row, base, "accuracy", "latency_b1") == (
        "full fine-tune → PyTorch int8 (dynamic): 2.0× faster at batch 1 (machine busy while timing (full: load "
        "3.10 on 2 cores): not a clean ratio), 4.0× smaller, +0.00 pt accuracy (90.00%) vs full")
    assert "busy" not in sentence(row, {**base, "load": IDLE}, "accuracy", "latency_b1")


@pytest.mark.slow  # four CLI runs; the logic is covered above without them
def test_eval_records_the_load_of_both_timings_and_the_ratio_says_when_busy(csv_data, tmp_path):
    art, q = tmp_path / "parent", tmp_path / "q"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "2", "--output", str(art),
            check=True)
    run_cli("compress", str(art), "--method", "int8-dynamic", "--output", str(q), check=True)
    parent = json.loads(run_cli("eval", str(art), "--repeats", "3", "--json", check=True).stdout)
    p = run_cli("eval", str(q), "--repeats", "3", "--json", check=True)
    ev = json.loads(p.stdout)
    for m in (parent, ev):
        load = m["cost"]["load"]
        assert load["cores"] == os.cpu_count() and load["busy"] == (
            load["load_1m"] > load["cores"] + BUSY_MARGIN or load["p95_over_median"] > SPREAD_LIMIT)
    caveat = busy_caveat(**{"this run": ev["cost"]["load"], "parent": parent["cost"]["load"]})
    assert ev["vs_parent"].get("busy") == caveat  # None (absent) exactly when neither side was busy
