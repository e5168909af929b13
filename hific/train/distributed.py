"""Where a training run happens: its device (bf16 autocast on GPU) and, under torchrun, its place among the
processes (one per GPU, DistributedDataParallel; gloo on CPU)."""
from __future__ import annotations

import os
import platform
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from hific.errors import TrainingError

# Training tensors are channels-last: convolutions and ChannelNorm's layer norm run faster so (CPU and GPU).
MEMORY_FORMAT = torch.channels_last


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA GPU is visible to PyTorch")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise TrainingError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


@dataclass(frozen=True)
class Placement:
    """This process's device, rank and the number of processes (``world``) of the run."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @classmethod
    def setup(cls, device: str) -> "Placement":
        """The placement of this process for ``--device``: under torchrun (WORLD_SIZE > 1) the process group is
        joined and each process takes the GPU of its LOCAL_RANK; otherwise rank 0 of 1."""
        chosen = pick_device(device)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(chosen)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
        if chosen.type == "cuda":
            chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(chosen)
        return cls(chosen, dist.get_rank(), world)

    def wrap(self, module: nn.Module | None) -> nn.Module | None:
        """``module`` in DistributedDataParallel when there are several processes (as is otherwise)."""
        if module is None or self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on GPU; full precision on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The batch-wide mean of a per-process scalar (lambda' looks at the whole batch's bpp estimate)."""
        if self.world > 1:
            dist.all_reduce(value)
            value = value / self.world
        return value

    def average_grads(self, params: list[nn.Parameter]) -> None:
        """Average gradients computed outside DDP's forward (the auxiliary loss's) over the processes."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true in some process (so that every process agrees); one process asks no device
        (the trainer asks every step, and reading a GPU tensor back would stall it)."""
        if self.world == 1:
            return bool(flag)
        value = torch.tensor(float(flag), device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value)

    def hardware(self) -> str:
        """A one-line description of where the run happens (for the model card)."""
        if self.device.type == "cuda":
            return f"{self.world} x {torch.cuda.get_device_name(self.device)}"
        return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
