"""Settings for the sandbox runtime, read from the environment.

The sandbox package never imports Django: the supervisor runs as its own
process and the executors are called from web, worker and tests alike. These
readers fail loudly on a value they cannot parse, naming the variable.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class ImproperSandboxConfig(ValueError):
    """A sandbox setting in the environment holds a value Podium cannot use."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperSandboxConfig(f"{name}={raw!r} is not an integer") from None


def _str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class SandboxConfig:
    """Where the runtime keeps its files and which ids and tools it uses.

    ``var_dir``/sandbox holds the supervisor socket (``supervisor.sock``),
    persisted state (``state/``), logs (``logs/``), per-replica run dirs
    (``run/``) and built environments (``envs/``).
    """

    var_dir: Path
    uid_base: int | None = None  # None: claim a free block (see sandbox.supervisor.claim_uids)
    uid_count: int = 10_000
    bwrap: str = "bwrap"
    setpriv: str = "setpriv"
    cgroup_parent: str = "podium"
    dev_dir: Path = Path("/dev")
    log_max_bytes: int = 64 * 1024 * 1024

    @property
    def root(self) -> Path:
        return self.var_dir / "sandbox"

    @property
    def socket_path(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def instance(self) -> str:
        """Short name of this installation, so two supervisors (a dev one and a
        test one) never share a cgroup."""
        return hashlib.sha256(str(self.var_dir).encode()).hexdigest()[:10]

    @classmethod
    def from_env(cls) -> SandboxConfig:
        var_dir = Path(_str("PODIUM_VAR_DIR", str(REPO_ROOT / "var"))).resolve()
        return cls(
            var_dir=var_dir,
            uid_base=_int("PODIUM_SANDBOX_UID_BASE", 0) or None,
            uid_count=_int("PODIUM_SANDBOX_UID_COUNT", 10_000),
            bwrap=_str("PODIUM_BWRAP", "bwrap"),
            setpriv=_str("PODIUM_SETPRIV", "setpriv"),
            cgroup_parent=_str("PODIUM_CGROUP_PARENT", "podium"),
            dev_dir=Path(_str("PODIUM_SANDBOX_DEV_DIR", "/dev")),
            log_max_bytes=_int("PODIUM_SANDBOX_LOG_MAX_BYTES", 64 * 1024 * 1024),
        )
