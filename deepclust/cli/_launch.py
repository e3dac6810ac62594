"""``deepclust cluster --nproc N``: the same command in N processes on torch.distributed.

The command checks its arguments, then starts itself again in ``N`` processes with
``python -m torch.distributed.run --standalone`` (a rendezvous on this machine's
loopback), without ``--nproc``. Each process joins the process group (``gloo`` on CPUs,
``nccl`` with one GPU per process on CUDA) and fits on its share of every batch (see
:doc:`/user_guide/distributed`); rank 0 writes the output folder, the other ranks write
into a temporary folder they remove. ``--resume`` continues from rank 0's checkpoint on
every rank, and a process dies with its launcher, so that a killed run leaves no rank
behind to hold the output folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator

__all__ = ["launch", "rank_context", "strip_nproc", "under_launcher"]


def under_launcher() -> bool:
    """Whether this process was started by torch.distributed's launcher with peers."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def strip_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(argv: list[str], nproc: int, threads: int | None) -> int:
    """Run ``deepclust`` with ``argv`` (without ``--nproc``) in ``nproc`` processes.

    Parameters
    ----------
    argv : list of str
        The command's arguments.
    nproc : int
        Processes, at least 2.
    threads : int or None
        Torch threads per process (``--threads``); by default the CPUs divided among the
        processes.

    Returns
    -------
    int
        0 when every process succeeded, else the first failing exit status (each process
        reports its own error).
    """
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // nproc))
    env["TORCH_CPP_LOG_LEVEL"] = "ERROR"  # DDP's C++ notes, once per rank
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "deepclust.cli",
        *strip_nproc(argv),
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    report = False  # the launcher's report on failed ranks: a traceback, left out
    for line in process.stderr:
        report = report or line.startswith(("Traceback", "[rank", "=====")) or "Error" in line
        if not report or line.startswith("deepclust"):
            sys.stderr.write(line)
            sys.stderr.flush()
    returncode = process.wait()
    if returncode == 0:
        return 0
    return returncode if returncode in (2, 130) else 1


def _die_with_launcher() -> None:
    """Have the kernel SIGKILL this process when its parent, the launcher, dies (Linux).

    torch.distributed's launcher starts each rank in a session of its own, so a SIGKILL
    of the command's process group (or the launcher alone) would leave the ranks running,
    rank 0 holding the output folder. Elsewhere, nothing is done.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG


@contextlib.contextmanager
def rank_context(args, device) -> Iterator[None]:
    """Under the launcher: join the process group for the command's run and give the
    ranks after the first a temporary, quiet output folder; each rank dies with the
    launcher. Elsewhere: nothing."""
    if not under_launcher():
        yield
        return
    import torch
    import torch.distributed as dist

    # Before the rendezvous: a launcher that died earlier takes its store with it, and
    # joining the process group fails.
    _die_with_launcher()
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    scratch = None
    if rank != 0:
        scratch = tempfile.mkdtemp(prefix=f"deepclust-rank{rank}-")
        args.out = os.path.join(scratch, "out")
        args.quiet, args.tensorboard = True, None
    try:
        with warnings.catch_warnings():
            if rank != 0:  # rank 0 says it
                warnings.simplefilter("ignore")
            yield
    finally:
        dist.destroy_process_group()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
