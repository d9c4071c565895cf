"""Data-parallel fine-tuning through torchrun (gloo on CPU): equivalence with one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.numpy import load_file

from supremum.store import Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux")


def _finetune(tmp_path, out: str, extra: list[str]):
    env = {**os.environ, "SUPREMUM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "supremum", "finetune", "--model", "tiny-bert", "--data", str(tmp_path / "d.csv"),
           "--max-steps", "6", "--lr", "3e-3", "--seed", "3", "--no-progress", "--json", "--precision", "fp32",
           "--output", str(tmp_path / out), *extra, "train.dropout=0", "train.keep_best=false", "train.threads=1"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout[p.stdout.index("{"):])


@pytest.fixture
def data(tmp_path):
    words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "dull"]
    rows = [f"{words[i % 8]} movie number {i} {'really ' * (i % 5)},{'pos' if i % 2 == 0 else 'neg'}"
            for i in range(80)]
    (tmp_path / "d.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_two_processes_at_batch_16_equal_one_process_at_batch_32(data):
    one = _finetune(data, "one", ["--batch-size", "32"])
    two = _finetune(data, "two", ["--batch-size", "16", "--nproc", "2"])
    l1 = [x["loss"] for x in one["metrics"]["loss_curve"]]
    l2 = [x["loss"] for x in two["metrics"]["loss_curve"]]
    assert len(l1) == len(l2) == 6
    # Stated tolerance: the same global batches; the two ranks pad their halves to their own
    # lengths and gloo sums gradients in another order, so agreement is to float32 rounding.
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-5)
    assert max(l1) - min(l1) > 1e-4  # the weights moved: not a trivial agreement of two idle runs
    w1 = load_file(str(data / "one" / "model.safetensors"))
    w2 = load_file(str(data / "two" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        assert abs(w1[k] - w2[k]).max() < 2e-5, k
    # Only rank 0 wrote: one artifact directory and one finished fine-tune row per run.
    rows = [r for r in Store(data / "home").runs() if r["kind"] == "finetune"]
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert two["metrics"]["train_size"] == one["metrics"]["train_size"]


def test_fsdp_over_two_processes_equals_one_process_and_resumes(data):
    """FSDP shards weights, gradients and Adam state over 2 ranks: the same trajectory and weights as
    one unsharded process; the checkpoint (gathered to rank 0) resumes a killed run."""
    one = _finetune(data, "one", ["--batch-size", "32", "--max-steps", "8"])
    fsdp = ["--batch-size", "16", "--nproc", "2", "--max-steps", "8", "train.parallel=fsdp"]
    two = _finetune(data, "two", [*fsdp, "--checkpoint-every", "3"])
    l1 = [x["loss"] for x in one["metrics"]["loss_curve"]]
    l2 = [x["loss"] for x in two["metrics"]["loss_curve"]]
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-5) and max(l1) - min(l1) > 1e-4
    w1 = load_file(str(data / "one" / "model.safetensors"))
    w2 = load_file(str(data / "two" / "model.safetensors"))
    assert w1.keys() == w2.keys() and all(abs(w1[k] - w2[k]).max() < 2e-5 for k in w1)
    # Stop after 6 steps (a checkpoint at 6 is written), then resume to 8 from it: the same weights
    # as the uninterrupted sharded run. Stopping by max_steps changes the schedule, so the first
    # part runs with the full run's step budget and is cut by a kill once step 6 is on disk.
    env = {**os.environ, "SUPREMUM_HOME": str(data / "home3"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "supremum", "finetune", "--model", "tiny-bert", "--data", str(data / "d.csv"),
           "--lr", "3e-3", "--seed", "3", "--no-progress", "--json", "--output", str(data / "three"), *fsdp,
           "--checkpoint-every", "3", "--precision", "fp32", "train.dropout=0", "train.keep_best=false",
           "train.threads=1"]
    # Each rank pauses right after its 7th update (the checkpoint of step 6 is whole on disk by
    # then); the test kills the command once a rank has paused.
    from faults import fault_env, wait_for_pause

    marker = data / "paused"
    proc = subprocess.Popen(cmd, env=fault_env(env, "step", 7, "pause", marker), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    import signal

    import psutil

    wait_for_pause(marker, proc)
    state = next((data / "home3").glob("checkpoints/*/last/state.json"))
    assert json.loads(state.read_text())["step"] == 6
    # SIGKILL the command alone: torchrun and the ranks (each in a session of its own, so a
    # process-group kill would miss them) must go with it rather than train on.
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    gone, alive = psutil.wait_procs(tree, timeout=20)
    assert len(tree) >= 3 and not alive, f"left running: {alive}"
    proc.wait()
    # The gathered optimizer state is keyed by parameter name (FSDP's full state dict).
    meta = json.loads((state.parent / "optimizer.json").read_text())
    assert any(k.startswith("bert.") for k in meta["scalars"]) or meta["param_groups"][0]["params"][0].startswith(
        "bert.")
    # Mark the checkpoint's first logged loss: the resumed run's curve must carry it (it resumed).
    st = json.loads(state.read_text())
    st["log"][0]["loss"] = 123.0
    state.write_text(json.dumps(st))
    p = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    resumed = json.loads(p.stdout[p.stdout.index("{"):])
    assert resumed["metrics"]["loss_curve"][0]["loss"] == 123.0
    w3 = load_file(str(data / "three" / "model.safetensors"))
    assert all(abs(w2[k] - w3[k]).max() < 1e-6 for k in w2)


def test_a_scale_sweep_with_two_processes_per_run_matches_one(tmp_path):
    """`scale --nproc 2`: every run trains under torchrun with the step's windows split over two
    processes; the losses match single-process runs to float32 rounding, and the runs are their
    own (the process count is part of a run's identity)."""
    args = ["scale", "--source", "markov:order=1,vocab=6,seed=2", "--sizes", "d8L1,d16L1",
            "--tokens", "4096,8192,16384", "--ctx", "16", "--batch-tokens", "128", "--eval-tokens", "2048",
            "--bootstrap", "10", "--jobs", "2", "--name", "k", "--plateau", "0", "--json"]
    env = {**os.environ, "SUPREMUM_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = {}
    for n in ("1", "2"):
        p = subprocess.run([sys.executable, "-m", "supremum", *args, "--nproc", n], capture_output=True, text=True,
                           env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        out[n] = {(r["shape"], r["D"]): r["loss"] for r in json.loads(p.stdout)["runs"]}
    assert out["1"].keys() == out["2"].keys() and len(out["1"]) == 6
    for k in out["1"]:
        assert out["2"][k] == pytest.approx(out["1"][k], rel=1e-4), k
    results = [json.loads(f.read_text()) for f in tmp_path.glob("scale/k/runs/*/result.json")]
    assert sorted(r.get("nproc", 1) for r in results) == [1] * 6 + [2] * 6


_RANK_FAILS = '''
import os, sys
rank = int(os.environ["RANK"])
if rank == int(sys.argv[1]) and sys.argv[2:] == ["kill"]:
    import signal
    os.kill(os.getpid(), signal.SIGKILL)
if rank == int(sys.argv[1]):
    sys.stderr.write("a line before\\n")
    sys.exit("bad thing on this rank: do the other thing")
print("rank", rank, "done")
'''


@pytest.mark.parametrize("debug", [False, True])
def test_a_failing_rank_other_than_0_says_why(tmp_path, monkeypatch, capfd, debug):
    """Rank 1's output is not on the terminal, but when it fails its one-line error is (it used
    to vanish: the command exited 1 with no message), with its exit code."""
    from supremum.train import distributed

    (tmp_path / "rankfail.py").write_text(_RANK_FAILS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    code = distributed.launch(2, ["1"], debug=debug, module="rankfail")
    out, err = capfd.readouterr()
    assert code == 1
    assert "rank 0 done" in out and "rank 1 done" not in out
    assert "bad thing on this rank: do the other thing" in err
    if debug:
        assert "a line before" in err
    else:
        assert "rank 1: bad thing on this rank: do the other thing (exit code 1)" in err
        assert "a line before" not in err and "Traceback" not in err


def test_a_failing_rank_0_keeps_its_own_error(tmp_path, monkeypatch, capfd):
    from supremum.train import distributed

    (tmp_path / "rankfail.py").write_text(_RANK_FAILS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert distributed.launch(2, ["0"], module="rankfail") == 1
    err = capfd.readouterr().err
    assert "bad thing on this rank: do the other thing" in err and "rank 1:" not in err


def test_a_rank_killed_by_a_signal_is_named(tmp_path, monkeypatch, capfd):
    """A rank that dies by a signal (the kernel's OOM killer, a segfault) prints nothing itself."""
    from supremum.train import distributed

    (tmp_path / "rankfail.py").write_text(_RANK_FAILS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert distributed.launch(2, ["1", "kill"], module="rankfail") == 128 + 9
    err = capfd.readouterr().err
    assert "rank 1: killed by SIGKILL (out of memory, or killed from outside)" in err
    assert "torch/distributed/elastic" not in err
