"""Data-parallel training helpers: torch.distributed set up from torchrun's environment.

`torchrun` sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_from_env`
turns them into a process group (NCCL on GPUs with device `cuda:LOCAL_RANK`, gloo on CPU) and
returns the rank's `Runtime`. Without torchrun (WORLD_SIZE unset or 1) nothing is initialised
and every helper below acts as the single process it is: rank 0 of a world of 1.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.device import Runtime, pick_runtime
from ovseg_core.errors import OvsegError


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str | None = None) -> Runtime:
    """The Runtime of this process; joins the process group first when WORLD_SIZE > 1.

    device: "cuda" / "cpu" / None (CUDA when present). Under torchrun the GPU index comes from
    LOCAL_RANK, so an explicit index ("cuda:1") is refused.
    """
    base = pick_runtime(device)
    if env_world_size() <= 1:
        return base
    if base.device.type == "cuda":
        if device is not None and base.device.index is not None:
            raise OvsegError("under torchrun the GPU is cuda:LOCAL_RANK; pass --device cuda")
        base = Runtime(torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))),
                       base.autocast_dtype)
        torch.cuda.set_device(base.device)
    if not dist.is_initialized():
        backend = "nccl" if base.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=base.device if backend == "nccl" else None)
    return base


def shutdown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the only rank that writes checkpoints, trainer state and logs."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _collective_device() -> torch.device:
    """Where collective tensors live: the current GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(value: float) -> float:
    """The mean of a Python float over all ranks (the value itself on one process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def same_on_all(value: int, what: str) -> int:
    """Check that every rank holds the same int (e.g. the resumed step); OvsegError if not."""
    if not is_distributed():
        return value
    t = torch.tensor([value, -value], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if int(t[0]) != -int(t[1]):
        raise OvsegError(f"ranks disagree on the {what} ({-int(t[1])}..{int(t[0])}); the output "
                         "folder must be on a file system shared by all nodes")
    return value


def broadcast_object(value):
    """Rank 0's picklable `value`, on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` (the model itself on one process).

    Only parameters with requires_grad join the gradient all-reduce, so the frozen SAM and
    text tower are never synced and find_unused_parameters is not needed. Rank 0's weights
    (frozen ones included) are broadcast once here. Buffers are not re-broadcast every forward:
    the model has no running statistics (no BatchNorm), only constant buffers.
    """
    if not is_distributed():
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    params = inspect.signature(DistributedDataParallel).parameters  # renamed in newer torch
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DistributedDataParallel(model, device_ids=ids, **{no_sync: False})


def loss_share(labels: Tensor, class_weights: Tensor) -> Tensor:
    """Factor that makes DDP's gradient mean equal the gradient of the global batch's loss.

    The loss of a batch is sum_i w[y_i] nll_i / sum_i w[y_i] over labelled pixels i, so rank r's
    loss L_r must count with weight W_r / W (W_r: its label weight, W: the sum over ranks).
    DDP averages gradients over R ranks, hence the factor R * W_r / W (a 0-dim tensor, 1 on one
    process). labels: (B, H, W) int64 with IGNORE_INDEX; class_weights: (N,).
    """
    if not is_distributed():
        return torch.ones((), device=labels.device)
    valid = labels != IGNORE_INDEX
    local = class_weights.to(labels.device)[labels[valid]].double().sum().reshape(1)
    total = local.to(_collective_device(), copy=True)
    dist.all_reduce(total)
    total = total.to(labels.device)
    if float(total) == 0.0:  # no labelled pixel anywhere: every loss is 0
        return torch.ones((), device=labels.device)
    return (dist.get_world_size() * local / total).float().reshape(())
