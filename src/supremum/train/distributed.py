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
from dataclasses import dataclass

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


def torchrun_command(nproc: int, module: str, argv: list[str]) -> list[str]:
    """`python -m <module> <argv>` as `nproc` local torchrun processes (rank 0's output only),
    tied to this process so that none outlives it."""
    return tied_to_this_process(["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                                 "--local-ranks-filter=0", "-m", module, *argv])


def launch(nproc: int, argv: list[str], debug: bool = False) -> int:
    """Run `supremum <argv>` under torchrun with `nproc` local processes; returns rank 0's exit
    code. Rank 0 keeps the terminal; the other ranks' output is dropped. When a rank fails,
    torchrun adds its own traceback and exits 1: we keep the rank's one-line error and its exit
    code (2 for bad input) and drop torchrun's report unless --debug."""
    cmd = torchrun_command(nproc, "supremum", argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    failed_code = None
    for line in iter(proc.stderr.readline, b""):
        m = _CHILD_FAILED.search(line)
        if m and failed_code is None:
            failed_code = int(m.group(1))
        if failed_code is None or debug:
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
    code = proc.wait()
    return failed_code if code and failed_code else code


# torchrun's line when a worker exits non-zero ("... failed (exitcode: 2) local_rank: 0 ...")
_CHILD_FAILED = re.compile(rb"failed \(exitcode: (-?\d+)\) local_rank")


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
