"""One training run as DDP over N local processes, started by torch's elastic launcher.

`launch(job, processes)` is what `torchrun --standalone --nproc-per-node N` does, called from
Python: `torch.distributed.launcher.api.elastic_launch` spawns N workers on this machine with
WORLD_SIZE / RANK / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set, and each worker runs
`run_job`, i.e. `distributed.init_from_env` (NCCL on `cuda:LOCAL_RANK`, gloo on CPU) and the
same `train` as one process. Rank 0 alone writes the checkpoint (see `ovseg_core.train`), so
when `launch` returns, `job.out_dir` holds exactly what a single-process run leaves there.

A worker rebuilds the run from the picklable `TrainJob`: the model from a checkpoint folder,
the samples from a module-level function and its arguments (the worker imports that module).
A failed worker (exception, signal) ends the others and raises OvsegError naming its rank and
cause; nothing is retried (a re-run resumes from the trainer state in `out_dir`). Workers die
with the launching process (torch sets PR_SET_PDEATHSIG), so a killed round leaves none
behind. They are spawned, so a calling script needs the usual `if __name__ == "__main__":`
guard (the `ovseg` command, Prefect workers and pytest have it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ovseg_core import distributed
from ovseg_core.checkpoint import load_model
from ovseg_core.data import SegmentationSamples
from ovseg_core.errors import OvsegError
from ovseg_core.train import TrainConfig, TrainResult, train


@dataclass(frozen=True)
class TrainJob:
    """A `train` call that another process can rebuild (every field picklable).

    init: checkpoint folder the model starts from (`load_model`). samples(*samples_args): the
    training samples; `samples` must be a module-level function. on_step: as in `train`, called
    on every rank (a module-level function or a functools.partial of one). device: "cuda",
    "cpu" or None (CUDA when present); with several processes rank r uses cuda:r.
    """

    init: str
    samples: Callable[..., SegmentationSamples]
    samples_args: tuple
    class_names: list[str]
    seen: list[bool]
    cfg: TrainConfig
    out_dir: str
    device: str | None = None
    on_step: Callable[[int, float], None] | None = None


def run_job(job: TrainJob, threads: int | None = None) -> TrainResult | None:
    """Run `job` in this process: alone, or as one rank of the launcher's process group.
    Returns the TrainResult on rank 0, None on the other ranks."""
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads)
    runtime = distributed.init_from_env(job.device)
    try:
        result = train(load_model(job.init), job.samples(*job.samples_args), job.class_names,
                       job.seen, job.cfg, Path(job.out_dir), runtime, on_step=job.on_step)
        return result if distributed.is_main() else None
    finally:
        distributed.shutdown()


def launch(job: TrainJob, processes: int) -> TrainResult:
    """Run `job` as DDP over `processes` workers on this machine; rank 0's TrainResult.

    `job.cfg.batch_size` is the global batch (each rank takes batch_size / processes samples).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_launch(job, processes)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes,
                          run_id=uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", local_addr="localhost", max_restarts=0)
    threads = max(1, len(os.sched_getaffinity(0)) // processes)  # torchrun's default is 1
    try:
        results = elastic_launch(config, run_job)(job, threads)
    except ChildFailedError as exc:
        raise OvsegError(failure_message(exc, processes)) from None
    return results[0]


def check_launch(job: TrainJob, processes: int) -> None:
    """OvsegError before anything starts when `processes` cannot run `job`."""
    if processes < 1:
        raise OvsegError(f"the number of training processes must be >= 1, got {processes}")
    if job.cfg.batch_size % processes:
        raise OvsegError(f"batch size {job.cfg.batch_size} (global) must be a multiple of the "
                         f"{processes} training processes")
    device = torch.device(job.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return
    if device.index is not None:
        raise OvsegError(f"{processes} training processes use cuda:0..{processes - 1}; set the "
                         f"device to cuda, not {device}")
    if torch.cuda.device_count() < processes:
        raise OvsegError(f"{processes} training processes need {processes} GPUs; "
                         f"{torch.cuda.device_count()} visible")


def failure_message(exc, processes: int) -> str:
    """One readable line per failed worker of a ChildFailedError (first failure first)."""
    lines = []
    for rank, failure in sorted(exc.failures.items(), key=lambda kv: kv[1].timestamp):
        cause = failure.message
        if isinstance(cause, dict):  # an exception: {"message": "Type: text", "extraInfo": ...}
            cause = cause.get("message", cause)
        elif failure.exitcode < 0:
            cause = f"killed by {failure.signal_name()}"
        elif not failure.error_file or failure.error_file == "<N/A>":
            cause = f"exit code {failure.exitcode}"
        lines.append(f"rank {rank}: {cause}")
    return (f"training over {processes} processes failed; the trainer state in the output "
            "folder is kept and a re-run resumes from it\n" + "\n".join(lines))
