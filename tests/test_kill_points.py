"""SIGKILL at seeded random points, then resume: the result equals an uninterrupted run's.

A kill point is drawn from `random.Random(seed)`: after the k-th optimizer update (weights
changed, nothing recorded yet) or right after the k-th file of a checkpoint write (a checkpoint
half on disk). The process kills itself there, which lands exactly on the drawn point; the
sweep, whose work runs in worker processes, is killed from outside after a drawn number of
finished runs plus a drawn delay.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from supremum.store import Store

SEEDS = [0, 1, 2]

KILLER = textwrap.dedent("""
    import json, os, signal, sys
    kind, at = sys.argv[1], int(sys.argv[2])
    sys.argv = ["supremum", *json.loads(sys.argv[3])]
    seen = [0]
    def hit(*_):
        seen[0] += 1
        if seen[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
    if kind == "step":
        import supremum.train.loop as loop
        build = loop.build_optimizer
        def build_and_watch(*a, **k):
            opt = build(*a, **k)
            opt.register_step_post_hook(hit)
            return opt
        loop.build_optimizer = build_and_watch
    else:
        import supremum.train.checkpoint as ck
        save = ck.save_file
        def save_and_watch(tensors, path, *a, **k):
            save(tensors, path, *a, **k)
            hit()
        ck.save_file = save_and_watch
    from supremum.cli import main
    main()
""")


def _env(home: Path) -> dict:
    return {**os.environ, "SUPREMUM_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supremum", *args], env=_env(home), capture_output=True,
                          text=True, timeout=600)


def _kill_at(args: list[str], home: Path, kind: str, at: int) -> None:
    p = subprocess.run([sys.executable, "-c", KILLER, kind, str(at), json.dumps(args)], env=_env(home),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == -signal.SIGKILL, f"no kill at {kind} {at}: {p.stderr[-2000:]}"


def _draw(seed: int, steps: int, checkpoint_files: int) -> tuple[str, int]:
    rng = random.Random(seed)
    kind = rng.choice(["step", "checkpoint"])
    return kind, rng.randint(1, steps - 1 if kind == "step" else checkpoint_files)


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _measured(art: Path, key: str) -> dict:
    """The artifact's recorded metrics without wall-clock times and the artifact's own id (its
    manifest, which holds ids and dates, is also why the size on disk differs by a few bytes)."""
    m = json.loads((art / "metrics.json").read_text())[key]
    drop = {"train_samples_per_s", "machine", "artifact", "size_on_disk_mb"}
    if (m.get("calibration") or {}).get("vs_parent"):  # names the parent by its (per-run) id
        m["calibration"]["vs_parent"] = {k: v for k, v in m["calibration"]["vs_parent"].items() if k != "parent"}
    if (m.get("error_analysis") or {}).get("predictions"):  # a file named by the (per-run) run id
        m["error_analysis"].pop("predictions")
    return {k: v for k, v in m.items() if k not in drop and "seconds" not in k}


FT = ["finetune", "--model", "tiny-bert", "--method", "full", "--max-steps", "24", "--batch-size", "8",
      "--lr", "3e-3", "--checkpoint-every", "4", "--no-progress", "train.eval_every=6", "train.threads=1"]


@pytest.fixture(scope="module")
def ft_reference(tmp_path_factory):
    from conftest import sentiment_rows, write_csv

    d = tmp_path_factory.mktemp("ft")
    data = write_csv(d / "reviews.csv", sentiment_rows(240))
    ref = _cli([*FT, "--data", str(data), "--output", str(d / "ref")], d / "home")
    assert ref.returncode == 0, ref.stderr
    return data, d / "ref"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_finetune_killed_at_a_random_point_resumes_to_the_same_model(ft_reference, tmp_path, seed):
    data, ref = ft_reference
    args = [*FT, "--data", str(data), "--output", str(tmp_path / "out")]
    kind, at = _draw(seed, 24, 6 * 3)  # 6 checkpoints of >= 3 files each
    _kill_at(args, tmp_path / "h", kind, at)
    res = _cli([*args, "--resume"], tmp_path / "h")
    assert res.returncode == 0, res.stderr
    _same_weights(ref, tmp_path / "out")
    assert _measured(ref, "training") == _measured(tmp_path / "out", "training")
    assert [r["status"] for r in Store(tmp_path / "h").runs()] == ["finished"]  # the killed row, continued


DISTILL = ["--method", "distill", "max_steps=30", "eval_every=10", "lr=1e-3", "batch_size=16",
           "--checkpoint-every", "5"]


@pytest.fixture(scope="module")
def distill_reference(tmp_path_factory):
    """A fine-tuned parent and its 1-layer student (shared), and the uninterrupted distillation."""
    from conftest import sentiment_rows, write_csv

    d = tmp_path_factory.mktemp("distill")
    data, home = write_csv(d / "reviews.csv", sentiment_rows(240)), d / "home"
    for args in (["finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "20", "--lr", "3e-3",
                  "--batch-size", "8", "--output", str(d / "parent"), "--no-progress", "train.threads=1"],
                 ["compress", str(d / "parent"), "--method", "drop-layers", "num_layers=1",
                  "--output", str(d / "student")],
                 ["compress", str(d / "student"), *DISTILL, "--output", str(d / "ref")]):
        r = _cli(args, home)
        assert r.returncode == 0, r.stderr
    return home, d


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_a_distillation_killed_at_a_random_point_resumes_to_the_same_student(distill_reference, tmp_path,
                                                                              seed):
    home, d = distill_reference
    out = tmp_path / "out"
    args = ["compress", str(d / "student"), *DISTILL, "--output", str(out)]
    kind, at = _draw(seed + 10, 30, 6 * 3)
    _kill_at(args, home, kind, at)
    assert not out.exists()  # nothing half-written
    rows = [r for r in Store(home).runs() if r["kind"] == "compress"]
    killed = rows[-1]
    assert killed["status"] in ("resumable", "killed")
    res = _cli([*args, "--resume"], home)
    assert res.returncode == 0, res.stderr
    _same_weights(d / "ref", out)
    ref_report = json.loads((d / "ref" / "manifest.json").read_text())["compression"][-1]["report"]
    got_report = json.loads((out / "manifest.json").read_text())["compression"][-1]["report"]
    ref_report.pop("train_seconds"), got_report.pop("train_seconds")
    assert got_report == ref_report
    after = {r["id"]: r["status"] for r in Store(home).runs()}
    assert after[killed["id"]] == "finished"  # the killed row was continued, not left behind
    assert not list(home.glob("checkpoints/compress-*"))  # removed once the artifact is saved
    if seed == 0:
        bad = _cli(["compress", str(d / "student"), "--method", "distill", "--resume"], home)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--checkpoint-every" in bad.stderr


def _pipeline(data: Path) -> dict:
    return {"name": "k", "model": {"name": "tiny-bert"}, "data": {"path": str(data)},
            "train": {"max_steps": 16, "batch_size": 8, "lr": 3e-3, "eval_every": 8, "checkpoint_every": 4,
                      "threads": 1},
            "stages": [{"id": "full", "finetune": {"method": {"name": "full"}}},
                       {"id": "L1", "from": "full", "compress": {"method": "drop-layers", "num_layers": 1}},
                       {"id": "kd", "from": "L1", "compress": {"method": "distill", "max_steps": 16,
                                                               "eval_every": 8, "lr": 1e-3}}],
            "evaluate": {"splits": ["dev"], "speed": False}}


@pytest.fixture(scope="module")
def pipeline_reference(tmp_path_factory):
    from conftest import sentiment_rows, write_csv

    d = tmp_path_factory.mktemp("pipe")
    data = write_csv(d / "reviews.csv", sentiment_rows(240))
    recipe = d / "p.json"
    recipe.write_text(json.dumps(_pipeline(data)))
    r = _cli(["run", str(recipe)], d / "home")
    assert r.returncode == 0, r.stderr
    return recipe, data, d / "home"


def _stage_dirs(home: Path) -> dict[str, Path]:
    return {p.name.split("-")[0]: p for p in (home / "pipelines" / "k").iterdir() if not p.name.startswith(".")}


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_a_pipeline_killed_at_a_random_point_reruns_to_the_same_artifacts(pipeline_reference, tmp_path, seed):
    recipe, data, ref_home = pipeline_reference
    kind, at = _draw(seed + 20, 32, 8 * 3)  # 16 fine-tune + 16 distillation steps, 8 checkpoints
    _kill_at(["run", str(recipe)], tmp_path / "h", kind, at)
    res = _cli(["run", str(recipe)], tmp_path / "h")
    assert res.returncode == 0, res.stderr
    ref, got = _stage_dirs(ref_home), _stage_dirs(tmp_path / "h")
    assert ref.keys() == got.keys() == {"full", "L1", "kd"}
    for stage in ref:
        _same_weights(ref[stage], got[stage])
        key = f"{data.name}:dev"
        assert _measured(ref[stage], key) == _measured(got[stage], key)
    statuses = [r["status"] for r in Store(tmp_path / "h").runs() if r["kind"] in ("finetune", "compress")]
    assert statuses.count("finished") == 3 and set(statuses) <= {"finished", "killed"}


SWEEP = ["scale", "--source", "markov:order=1,vocab=6,seed=2", "--sizes", "d8L1,d16L1,d16L2",
         "--tokens", "4096,8192,16384", "--ctx", "16", "--batch-tokens", "128", "--eval-tokens", "2048",
         "--bootstrap", "10", "--jobs", "2", "--name", "k", "--plateau", "0", "--json"]


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory):
    r = _cli(SWEEP, tmp_path_factory.mktemp("sweep"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_a_scale_sweep_killed_at_a_random_point_resumes_to_the_same_fit(sweep_reference, tmp_path, seed):
    from faults import fault_env, wait_for_pause

    # 9 runs of 32, 64 and 128 steps (672 in all), in worker processes that share one step
    # counter: the worker that makes the drawn update pauses there, and the sweep is killed then.
    at = random.Random(seed + 30).randint(1, 600)
    home, marker = tmp_path / "h", tmp_path / "paused"
    home.mkdir()
    env = fault_env(_env(home), "step", at, "pause", marker, counter=tmp_path / "steps")
    p = subprocess.Popen([sys.executable, "-m", "supremum", *SWEEP], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_pause(marker, p)
    os.killpg(p.pid, signal.SIGKILL)  # the sweep and its running workers
    assert p.wait() == -signal.SIGKILL
    res = _cli(SWEEP, home)
    assert res.returncode == 0, res.stderr
    a, b = sweep_reference, json.loads(res.stdout)
    key = lambda r: (r["shape"], r["D"])  # noqa: E731
    assert sorted((key(r), r["loss"]) for r in a["runs"]) == sorted((key(r), r["loss"]) for r in b["runs"])
    assert a["fit"]["E"] == pytest.approx(b["fit"]["E"], rel=1e-9)
