"""Memory, pids and CPU limits through cgroups, v1 and v2.

Podium only ever touches cgroups it created: ``<parent>/<instance>/<name>``
under each controller it uses (``podium/<instance>/sb…`` by default), where
``instance`` tells apart two installations on one host. A *leaf* is the cgroup
of one sandbox replica; its process joins it from ``preexec`` (before exec, so
nothing forked later escapes it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


class CgroupError(RuntimeError):
    """cgroups cannot be used as Podium needs them on this host."""


@dataclass(frozen=True)
class CgroupStats:
    oom_kills: int = 0
    pids_max_hits: int = 0
    memory_peak: int = 0


def _read_kv(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _v1_mounts() -> dict[str, Path]:
    """Controller name -> v1 mount point, from /proc/self/mounts."""
    mounts: dict[str, Path] = {}
    with open("/proc/self/mounts") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 4 and fields[2] == "cgroup":
                for option in fields[3].split(","):
                    if option in ("memory", "pids", "cpu"):
                        mounts[option] = Path(fields[1])
    return mounts


class Cgroups:
    """Creates, inspects and removes the leaves of one Podium instance."""

    def __init__(self, parent: str, instance: str) -> None:
        self.relative = Path(parent) / instance
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            self.version = 2
            self.controllers: dict[str, Path] = {"unified": CGROUP_ROOT}
        else:
            self.version = 1
            self.controllers = _v1_mounts()
            missing = {"memory", "pids"} - set(self.controllers)
            if missing:
                raise CgroupError(f"cgroup v1 controllers not mounted: {', '.join(sorted(missing))}")

    def describe(self) -> str:
        return f"cgroup v{self.version} ({', '.join(sorted(self.controllers))})"

    def _dirs(self, name: str) -> dict[str, Path]:
        return {ctl: root / self.relative / name for ctl, root in self.controllers.items()}

    def _ensure_parents_v2(self) -> None:
        wanted = ["+memory", "+pids", "+cpu"]
        node = CGROUP_ROOT
        for part in self.relative.parts:
            available = set((node / "cgroup.controllers").read_text().split())
            enable = [c for c in wanted if c[1:] in available]
            with contextlib.suppress(OSError):
                (node / "cgroup.subtree_control").write_text(" ".join(enable))
            node = node / part
            node.mkdir(exist_ok=True)
        available = set((node / "cgroup.controllers").read_text().split())
        (node / "cgroup.subtree_control").write_text(" ".join(c for c in wanted if c[1:] in available))

    def create(self, name: str, *, memory_bytes: int, pids: int, cpu: float) -> tuple[list[str], list[str]]:
        """Create leaf ``name`` with its limits. Returns the ``cgroup.procs`` files
        a process writes its pid to in order to join, and warnings for limits this
        host cannot enforce (the CPU quota when the cpu controller is absent)."""
        warnings: list[str] = []
        procs: list[str] = []
        if self.version == 2:
            self._ensure_parents_v2()
        for path in self._dirs(name).values():
            path.mkdir(parents=True, exist_ok=True)
            procs.append(str(path / "cgroup.procs"))
        dirs = self._dirs(name)
        quota = max(1000, int(cpu * CPU_PERIOD_US))
        if self.version == 2:
            leaf = dirs["unified"]
            (leaf / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (leaf / "memory.swap.max").write_text("0")
            (leaf / "pids.max").write_text(str(pids))
            try:
                (leaf / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            except OSError:
                warnings.append("CPU quota not enforced: the cpu controller is not available")
        else:
            mem = dirs["memory"]
            (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (dirs["pids"] / "pids.max").write_text(str(pids))
            if "cpu" in dirs:
                (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                warnings.append("CPU quota not enforced: the cpu controller is not mounted")
        return procs, warnings

    def pids(self, name: str) -> list[int]:
        """Host pids in leaf ``name`` (empty when it does not exist)."""
        primary = "unified" if self.version == 2 else "memory"
        path = self._dirs(name)[primary] / "cgroup.procs"
        try:
            return [int(p) for p in path.read_text().split()]
        except (OSError, ValueError):
            return []

    def signal_all(self, name: str, sig: int, spare: int | None = None) -> None:
        for pid in self.pids(name):
            if pid != spare:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def stats(self, name: str) -> CgroupStats:
        dirs = self._dirs(name)
        if self.version == 2:
            leaf = dirs["unified"]
            return CgroupStats(
                oom_kills=_read_kv(leaf / "memory.events").get("oom_kill", 0),
                pids_max_hits=_read_kv(leaf / "pids.events").get("max", 0),
                memory_peak=_read_int(leaf / "memory.peak"),
            )
        return CgroupStats(
            oom_kills=_read_kv(dirs["memory"] / "memory.oom_control").get("oom_kill", 0),
            pids_max_hits=_read_kv(dirs["pids"] / "pids.events").get("max", 0),
            memory_peak=_read_int(dirs["memory"] / "memory.max_usage_in_bytes"),
        )

    def destroy(self, name: str, timeout: float = 5.0) -> bool:
        """Kill everything left in leaf ``name`` and remove it. True when gone."""
        dirs = self._dirs(name)
        if self.version == 2 and (dirs["unified"] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (dirs["unified"] / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + timeout
        while self.pids(name) and time.monotonic() < deadline:
            self.signal_all(name, signal.SIGKILL)
            time.sleep(0.005)
        gone = True
        for path in dirs.values():
            for _ in range(200):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.001)
            else:
                gone = False
        return gone

    def remove_instance(self) -> None:
        """Remove this instance's (empty) parent cgroups, when it shuts down."""
        for root in self.controllers.values():
            with contextlib.suppress(OSError):
                (root / self.relative).rmdir()

    def leaves(self) -> list[str]:
        """Names of the leaves that exist now (left over after a crash, say)."""
        names: set[str] = set()
        for root in self.controllers.values():
            base = root / self.relative
            if base.is_dir():
                names.update(p.name for p in base.iterdir() if p.is_dir())
        return sorted(names)
