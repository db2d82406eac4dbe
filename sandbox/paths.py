"""Checks on host paths that sandbox uids must reach.

bubblewrap resolves bind sources as the sandbox's unprivileged uid, so a code
dir, an environment or an interpreter is only usable when every parent is
world-searchable and the path itself world-readable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def unreachable_reason(path: Path) -> str | None:
    """Why a sandbox uid could not read ``path``, or None when it can."""
    if not path.exists():
        return f"{path} does not exist"
    for parent in reversed(path.parents):
        mode = os.stat(parent).st_mode
        if not mode & stat.S_IXOTH:
            return f"{parent} is not world-searchable (mode {oct(mode & 0o777)})"
    mode = os.stat(path).st_mode
    wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    if mode & wanted != wanted:
        return f"{path} is not world-readable (mode {oct(mode & 0o777)})"
    return None
