"""NVIDIA GPUs on this host, for the local executor.

A sandbox that asks for N GPUs gets exactly N ``/dev/nvidiaK`` nodes bound in,
plus the control nodes (``nvidiactl``, ``nvidia-uvm``…) and
``CUDA_VISIBLE_DEVICES=0..N-1``. Where there are too few free GPUs (or too few
matching the constraints), the request fails naming what was asked and what
exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import ResourceUnavailable
from sandbox.spec import GpuConstraints

CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


@dataclass(frozen=True)
class Gpu:
    index: int
    device: Path
    model: str | None = None
    memory_mib: int | None = None


def _inventory() -> dict[int, tuple[str, int]]:
    """index -> (model, memory MiB) from nvidia-smi, when it is installed."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {}
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[int, tuple[str, int]] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():
            found[int(parts[0])] = (parts[1], int(parts[2]))
    return found


def discover(dev_dir: Path = Path("/dev")) -> list[Gpu]:
    """The GPUs whose device nodes exist under ``dev_dir``, by index."""
    details = _inventory()
    gpus = []
    for path in dev_dir.glob("nvidia*"):
        match = re.fullmatch(r"nvidia(\d+)", path.name)
        if match:
            index = int(match.group(1))
            model, memory = details.get(index, (None, None))
            gpus.append(Gpu(index=index, device=path, model=model, memory_mib=memory))
    return sorted(gpus, key=lambda gpu: gpu.index)


def control_nodes(dev_dir: Path = Path("/dev")) -> list[Path]:
    return [dev_dir / name for name in CONTROL_NODES if (dev_dir / name).exists()]


def _matches(gpu: Gpu, constraints: GpuConstraints | None) -> bool:
    if constraints is None:
        return True
    if constraints.model and (gpu.model is None or constraints.model.lower() not in gpu.model.lower()):
        return False
    return not (constraints.min_memory_mib and (gpu.memory_mib is None or gpu.memory_mib < constraints.min_memory_mib))


def allocate(asked: int, constraints: GpuConstraints | None, present: list[Gpu], in_use: set[int]) -> list[Gpu]:
    """Pick ``asked`` free GPUs matching ``constraints`` or raise ``ResourceUnavailable``."""
    if asked == 0:
        return []
    matching = [gpu for gpu in present if _matches(gpu, constraints)]
    free = [gpu for gpu in matching if gpu.index not in in_use]
    if len(free) >= asked:
        return free[:asked]
    wanted = f"{asked} GPU{'s' if asked != 1 else ''}"
    if constraints is not None:
        wanted += f" matching {constraints.model_dump(exclude_none=True)}"
    detail = f"this host has {len(present)}"
    if constraints is not None:
        detail += f", {len(matching)} of them matching"
    if in_use & {gpu.index for gpu in matching}:
        detail += f", {len(matching) - len(free)} in use by other sandboxes"
    raise ResourceUnavailable(f"asked for {wanted}; {detail}")
