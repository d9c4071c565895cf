import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

from supremum.errors import UserError
from supremum.pipeline import PipelineConfig, check, order, plan, run
from supremum.store import Store


def recipe(data, extra_stages=()):
    stages = [
        {"id": "full", "finetune": {"method": {"name": "full"}}},
        {"id": "q8", "from": "full", "compress": {"method": "int8-dynamic"}},
        {"id": "ffn", "from": "full", "compress": {"method": "prune-ffn", "amount": 0.5, "calibration_size": 8}},
        {"id": "broken", "from": "full", "compress": {"method": "drop-layers", "num_layers": 9}},
        {"id": "after-broken", "from": "broken", "compress": {"method": "fp16"}},
        *extra_stages,
    ]
    return {"name": "t", "model": {"name": "tiny-bert"}, "data": {"path": str(data)},
            "train": {"max_steps": 5, "lr": 3e-3}, "stages": stages,
            "evaluate": {"splits": ["dev"], "speed": False}}


def test_run_skips_done_stages_isolates_failures_and_adds_new_work(csv_data):
    store = Store()
    cfg = PipelineConfig.model_validate(recipe(csv_data))
    assert [p["status"] for p in plan(cfg, store)] == ["to run"] * 5
    rows = {r["stage"]: r for r in run(cfg, store)}
    assert rows["full"]["status"] == rows["q8"]["status"] == rows["ffn"]["status"] == "finished"
    assert rows["broken"]["status"] == "failed" and "num_layers=9" in rows["broken"]["error"]
    assert rows["after-broken"]["status"] == "skipped"
    assert rows["q8"]["evaluated"] == ["dev"]

    more = PipelineConfig.model_validate(recipe(csv_data, [{"id": "bf", "from": "ffn",
                                                             "compress": {"method": "bf16"}}]))
    again = {r["stage"]: r for r in run(more, store)}
    assert {k: r["status"] for k, r in again.items() if r["status"] == "cached"} == {
        "full": "cached", "q8": "cached", "ffn": "cached"}
    assert again["bf"]["status"] == "finished" and again["q8"]["evaluated"] == []  # measured already
    assert again["bf"]["artifact"] != again["ffn"]["artifact"]

    changed = recipe(csv_data)
    changed["stages"][1]["compress"]["per_channel"] = False  # a changed stage runs again
    rows3 = {r["stage"]: r["status"] for r in run(PipelineConfig.model_validate(changed), store)}
    assert rows3["q8"] == "finished" and rows3["full"] == "cached"


def test_recipe_errors(csv_data):
    bad = recipe(csv_data)
    bad["stages"][1]["from"] = "nowhere"
    with pytest.raises(ValueError, match="unknown stage 'nowhere'"):
        PipelineConfig.model_validate(bad)
    loop = recipe(csv_data)
    loop["stages"] = [{"id": "a", "from": "b", "compress": {"method": "fp16"}},
                      {"id": "b", "from": "a", "compress": {"method": "fp16"}}]
    with pytest.raises(UserError, match="cycle"):
        order(PipelineConfig.model_validate(loop))


def test_run_cli_dry_run_and_summary(csv_data, tmp_path):
    r = recipe(csv_data)
    r["stages"] = r["stages"][:2]
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(r))  # JSON is YAML
    dry = json.loads(run_cli("run", str(path), "--dry-run", "--json", check=True).stdout)
    assert [d["status"] for d in dry] == ["to run", "to run"]
    done = run_cli("run", str(path), check=True)
    assert "finished" in done.stdout
    again = json.loads(run_cli("run", str(path), "--dry-run", "--json", check=True).stdout)
    assert [d["status"] for d in again] == ["done", "done"]
    path.write_text(json.dumps({**r, "stagez": []}))
    bad = run_cli("run", str(path))
    assert bad.returncode == 2 and "unknown key 'stagez'" in bad.stderr


def test_shipped_pipeline_recipes_validate(monkeypatch):
    from pathlib import Path

    from supremum.recipe import build, load_yaml

    monkeypatch.setenv("SUPREMUM_DATA", "/data")
    paths = sorted((Path(__file__).parent.parent / "recipes" / "pipelines").glob("*.yaml"))
    assert paths
    for p in paths:
        raw, lines = load_yaml(p)
        cfg = build(PipelineConfig, raw, str(p), lines)
        assert cfg.data.path.startswith("/data/") and order(cfg)
        check(cfg)  # every stage's options through its typed config


def late_typo(data) -> dict:
    """Seven stages, the seventh with a misspelt option."""
    r = recipe(data)
    r["stages"] = r["stages"][:3] + [{"id": f"c{i}", "from": "full", "compress": {"method": "fp16"}}
                                     for i in (4, 5, 6)]
    r["stages"].append({"id": "p7", "from": "full", "compress": {"method": "prune-magnitude", "sparsty": 0.5}})
    return r


TYPO = ("error: stage 7 (compress p7): unknown key 'sparsty' (did you mean 'sparsity'? "
        "valid keys: method, scope, sparsity)\n")


@pytest.mark.parametrize("dry", [True, False])
def test_a_bad_option_in_a_late_stage_stops_the_run_before_anything_trains(csv_data, tmp_path, dry):
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(late_typo(csv_data)))
    proc = run_cli("run", str(path), *(["--dry-run"] if dry else []))
    assert (proc.returncode, proc.stderr) == (2, TYPO)
    assert Store().runs() == [] and not (Store().root / "pipelines").exists()  # nothing trained


def test_every_stage_kind_is_validated_up_front(csv_data):
    cases = [({"finetune": {"method": {"name": "lora", "rr": 4}}},
              "stage 1 (finetune full): unknown key 'method.rr'"),
             ({"finetune": {"method": "full", "train": {"lrr": 1e-3}}},
              "stage 1 (finetune full): unknown key 'train.lrr'"),
             ({"finetune": {"method": "lorra"}}, "stage 1 (finetune full): 'method': Input tag 'lorra'"),
             ({"from": "full", "compress": {"method": "int9"}},
              "stage 2 (compress q8): unknown compression method 'int9'"),
             ({"from": "full", "compress": {"amount": 0.5}}, "stage 2 (compress q8): compress needs method:")]
    for i, (stage, message) in enumerate(cases):
        r = recipe(csv_data)
        at = 0 if "finetune" in stage else 1
        r["stages"][at] = {"id": r["stages"][at]["id"], **stage}
        with pytest.raises(UserError) as e:
            plan(PipelineConfig.model_validate(r))
        assert e.value.message.startswith(message), (i, e.value.message)
    assert Store().runs() == []


DROP = {"id": "dl", "from": "full", "compress": {"method": "drop-layers", "num_layers": 1}}


def test_estimate_from_probe_then_from_history(csv_data):
    from supremum.pipeline import estimate_plan

    store = Store()
    r = recipe(csv_data)
    r["stages"] = r["stages"][:2] + [DROP, {"id": "d", "from": "dl",
                                            "compress": {"method": "distill", "max_steps": 4}}]
    cfg = PipelineConfig.model_validate(r)
    rows = plan(cfg, store)
    est = estimate_plan(cfg, rows, store)
    assert "probe" in est["stages"]["full"]["basis"] and est["stages"]["full"]["seconds"] > 0
    assert "teacher" in est["stages"]["d"]["basis"]
    assert "measured" in est["stages"]["q8"]["basis"] and "measured now" in est["stages"]["evaluations"]["basis"]
    assert not est["unknown"]
    assert rows[0]["estimate_s"] >= 0
    assert {x["stage"]: x["status"] for x in run(cfg, store)} == dict.fromkeys(["full", "q8", "dl", "d"],
                                                                                 "finished")
    r["stages"].append({"id": "q8b", "from": "d", "compress": {"method": "int8-dynamic"}})
    cfg2 = PipelineConfig.model_validate(r)
    est2 = estimate_plan(cfg2, plan(cfg2, store), store)
    assert list(est2["stages"]) == ["q8b", "evaluations"] and not est2["unknown"]
    assert "past int8-dynamic runs" in est2["stages"]["q8b"]["basis"]


def test_resume_after_a_stage_is_killed(csv_data, tmp_path):
    """SIGKILL the pipeline while a training compression runs: the re-run keeps the finished
    fine-tune, redoes only the killed stage, and leaves no half-written directory behind."""
    import signal
    import subprocess
    import sys

    from faults import fault_env

    r = recipe(csv_data)
    r["stages"] = [r["stages"][0], DROP, {"id": "slow", "from": "dl", "compress": {
        "method": "distill", "max_steps": 40, "eval_every": 40}}]
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(r))
    # The stages run in this one process: the fine-tune's 5 updates, then the distillation's; the
    # kill lands on the distillation's 4th. (The estimate's probe runs in a process of its own and
    # makes fewer updates, so it never reaches the count.)
    from supremum.estimate import PROBE_UPDATES

    assert PROBE_UPDATES < 5 + 4
    proc = subprocess.run([sys.executable, "-m", "supremum", "run", str(path)], capture_output=True, text=True,
                          env=fault_env(dict(os.environ), "step", 5 + 4), timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    store = Store()
    assert [x["status"] for x in store.runs() if x["kind"] == "compress"] == ["finished", "killed"]
    before = {p["stage"]: p["status"] for p in plan(PipelineConfig.model_validate(r), store)}
    assert before == {"full": "done", "dl": "done", "slow": "to run"}
    rows = {x["stage"]: x["status"] for x in run(PipelineConfig.model_validate(r), store)}
    assert rows == {"full": "cached", "dl": "cached", "slow": "finished"}
    leftovers = [p.name for p in (store.root / "pipelines" / "t").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_the_estimate_is_within_2x_of_the_actual_time_and_is_checked_against_it(csv_data):
    """A fresh store (so the estimate comes from the probe): the estimate printed before the run
    and the time the run took are within a factor 2, and the run ends by printing both."""
    import re
    import time

    r = recipe(csv_data)
    r["train"] = {"max_steps": 40, "lr": 3e-3, "batch_size": 16, "eval_every": 20}
    r["stages"] = [r["stages"][0], r["stages"][1], DROP, {"id": "d", "from": "dl", "compress": {
        "method": "distill", "max_steps": 30, "batch_size": 16}}]
    r["evaluate"] = {"splits": ["dev"], "speed": True, "repeats": 6}
    cfg, store = PipelineConfig.model_validate(r), Store()
    said: list[tuple[float, str]] = []
    rows = run(cfg, store, on_event=lambda m: said.append((time.perf_counter(), m)))
    assert [x["status"] for x in rows] == ["finished"] * 4
    start = next(t for t, m in said if "stages to run" in m)
    took = said[-1][0] - start
    estimated = sum(x["estimate_s"] for x in rows)  # each stage with its evaluation
    assert 0.5 <= estimated / took <= 2, (estimated, took, said)
    assert re.fullmatch(r"estimated \d+ (s|min), took \d+ (s|min)", said[-1][1]), said[-1][1]


def _parallel_matches_sequential(data, tmp_path, **how):
    """The same recipe one stage after another in-process and `how` (jobs/executor): the same
    statuses, and artifacts with identical weights (one torch thread each, so the same kernels)."""
    from safetensors.torch import load_file

    r = recipe(data)
    r["train"]["threads"] = 1
    out = {}
    for name, extra in (("seq", {}), ("par", how)):
        store = Store(tmp_path / name)
        rows = run(PipelineConfig.model_validate({**r, **extra}), store)
        out[name] = {x["stage"]: x for x in rows}
    seq, par = out["seq"], out["par"]
    assert {k: v["status"] for k, v in seq.items()} == {k: v["status"] for k, v in par.items()}
    assert par["broken"]["status"] == "failed" and "num_layers=9" in par["broken"]["error"]
    for stage in ("full", "q8", "ffn"):
        a, b = (load_file(str(Path(x[stage]["output"]) / "model.safetensors")) for x in (seq, par))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), stage
        assert par[stage]["evaluated"] == ["dev"]
    return par


def test_independent_stages_run_at_once_in_worker_processes(csv_data, tmp_path):
    par = _parallel_matches_sequential(csv_data, tmp_path, jobs=2)
    # every stage ran in its own worker process, not in this one
    pids = [r["pid"] for r in Store(tmp_path / "par").runs() if r["kind"] in ("finetune", "compress")]
    assert len(pids) == 4 and len(set(pids)) == 4 and os.getpid() not in pids
    assert par["after-broken"]["status"] == "skipped"


def test_pipeline_stages_on_a_local_ray_instance(csv_data, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'supremum[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _parallel_matches_sequential(csv_data, tmp_path, executor="ray", jobs=2)
    finally:
        ray.shutdown()
