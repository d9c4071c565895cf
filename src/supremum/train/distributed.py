"""Data-parallel training: the launch through torchrun and what each process needs to know.

`supremum finetune --nproc N` re-runs the same command under `torchrun --standalone
--nproc-per-node N` (multi-node: run `torchrun --nnodes ... -m supremum finetune ...` yourself;
every rendezvous flag of torchrun works). Inside, each process sees RANK / WORLD_SIZE /
LOCAL_WORLD_SIZE from torchrun, joins a gloo (CPU) or NCCL (GPU) process group, and trains on its
share of every global batch; gradients are averaged by DistributedDataParallel. Only rank 0
writes checkpoints, artifacts and store rows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def current() -> Dist:
    """This process's place, from torchrun's environment (a plain run is rank 0 of 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_WORLD_SIZE", world)))


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies. torchrun starts every rank in a session
    of its own, so without this a `kill -9` of the command (or of torchrun) leaves the ranks
    training on; with it (and `tied_to_this_process` for torchrun), the whole tree goes."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


# Runs `python <args>` with PR_SET_PDEATHSIG set (it survives exec) unless the parent has already
# gone; done in the child itself rather than in a preexec_fn, which is unsafe in threaded parents.
_TIED = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
         "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
         "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


def tied_to_this_process(python_args: list[str]) -> list[str]:
    """The command line for `python <python_args>` that dies with this process (Linux)."""
    if not sys.platform.startswith("linux"):
        return [sys.executable, *python_args]
    return [sys.executable, "-c", _TIED, str(os.getpid()), *python_args]


def init(d: Dist, threads: int | None, device_spec: str = "auto") -> None:
    """Join the process group once; split the cores so local processes do not fight. The backend
    follows where the tensors are (NCCL for CUDA, gloo for the CPU), not whether CUDA is visible;
    on CUDA each local rank takes its own GPU (cuda:LOCAL_RANK)."""
    if not d.active:
        return
    die_with_parent()
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // d.local_world))
    import torch.distributed as tdist

    from supremum import device

    where = device.resolve(device_spec)
    if where.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", d.rank % d.local_world)))
    if not tdist.is_initialized():
        tdist.init_process_group(device.distributed_backend(where))


def all_reduce_sum(value: float, d: Dist) -> float:
    if not d.active:
        return value
    import torch.distributed as tdist

    t = torch.tensor([value], dtype=torch.float64)
    tdist.all_reduce(t)
    return float(t.item())


def barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as tdist

        tdist.barrier()


def shutdown(d: Dist) -> None:
    if d.active:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()


def torchrun_command(nproc: int, module: str, argv: list[str], log_dir: str | None = None) -> list[str]:
    """`python -m <module> <argv>` as `nproc` local torchrun processes (rank 0's output only),
    tied to this process so that none outlives it. With `log_dir`, the other ranks' stdout and
    stderr go to files under it (torchrun's --redirects; see `rank_stderr`) instead of nowhere,
    so that a rank > 0 that fails can say why; rank 0 keeps the terminal (a TTY stays a TTY)."""
    logs = []
    if log_dir and nproc > 1:
        logs = [f"--log-dir={log_dir}", "--redirects=" + ",".join(f"{r}:3" for r in range(1, nproc))]
    return tied_to_this_process(["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                                 "--local-ranks-filter=0", *logs, "-m", module, *argv])


def rank_stderr(log_dir: str, local_rank: int) -> str:
    """What local rank `local_rank` wrote to stderr in a `torchrun_command(..., log_dir)` run
    (torchrun keeps it at <log_dir>/<run id>/attempt_<n>/<rank>/stderr.log); '' if none."""
    files = sorted(Path(log_dir).glob(f"*/attempt_*/{local_rank}/stderr.log"))
    return files[-1].read_text(errors="replace") if files else ""


def last_line(text: str) -> str:
    """The last line that is not torchrun's or PyTorch's own logging: a rank's one-line error."""
    lines = [x for x in text.splitlines() if x.strip() and "torch/distributed" not in x]
    return lines[-1] if lines else ""


def launch(nproc: int, argv: list[str], debug: bool = False, module: str = "supremum") -> int:
    """Run `python -m <module> <argv>` under torchrun with `nproc` local processes; returns the exit code
    of the first rank that failed (2 for bad input), else 0. Rank 0 keeps the terminal; the other
    ranks' output goes to a temporary log directory, and when one of them fails first, its
    last line (its one-line error; its whole stderr with --debug) is printed as `rank N: ...`.
    A rank ended by a signal is named with it (exit code 128 + the signal's number). torchrun's
    own log lines and its report of a failure are dropped unless --debug."""
    with tempfile.TemporaryDirectory(prefix="supremum-ranks-") as logs:
        cmd = torchrun_command(nproc, module, argv, logs)
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        failed = None  # (exit code, local rank) of the first failure torchrun reports
        for line in iter(proc.stderr.readline, b""):
            m = _CHILD_FAILED.search(line)
            if m and failed is None:
                failed = int(m.group(1)), int(m.group(2))
            if debug or (failed is None and b"torch/distributed/elastic/" not in line):  # torchrun's log
                sys.stderr.buffer.write(line)
                sys.stderr.buffer.flush()
        code = proc.wait()
        if not (code and failed):
            return code
        exit_code, rank = failed
        if exit_code < 0:  # no rank prints anything when a signal ends it
            sys.stderr.write(f"rank {rank}: {_signalled(-exit_code)}\n")
            return 128 - exit_code  # the shell's convention for a death by signal
        if rank != 0:  # rank 0 said it on the terminal already
            said = rank_stderr(logs, rank)
            sys.stderr.write(said if debug else f"rank {rank}: {last_line(said) or 'exited with no message'} "
                             f"(exit code {exit_code})\n")
        return exit_code


def _signalled(signum: int) -> str:
    import signal

    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    crash = "a crash in native code"
    why = {"SIGKILL": "out of memory, or killed from outside", "SIGSEGV": crash, "SIGABRT": crash,
           "SIGBUS": crash}.get(name, "killed from outside")
    return f"killed by {name} ({why}); rerun with --debug for torchrun's report"


# torchrun's line when a worker exits non-zero ("... failed (exitcode: 2) local_rank: 0 ...")
_CHILD_FAILED = re.compile(rb"failed \(exitcode: (-?\d+)\) local_rank: (\d+)")


def strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out
