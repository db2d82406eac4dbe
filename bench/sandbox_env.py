"""Environment figures: a fresh scikit-learn environment built with uv (cold
and warm uv cache), and the latency of a cache hit (target: <= 50 ms to a
ready environment).

Run: ``.venv/bin/python bench/sandbox_env.py`` while ``make up`` runs: builds
happen in build sandboxes of its supervisor. Uses this host's pip index
configuration, like Podium does, and a scratch environment root.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.environments import EnvironmentBuilder  # noqa: E402

REQUIREMENTS = "scikit-learn"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="podium-envbench-", dir="/tmp"))
    root.chmod(0o755)  # build sandboxes reach it as their own unprivileged uid
    try:
        builder = EnvironmentBuilder(root=root / "envs")
        print(f"python {builder.python}; uv {builder.uv}")
        started = time.perf_counter()
        env = builder.ensure(REQUIREMENTS, tenant="bench")
        print(f"fresh '{REQUIREMENTS}' env, cold uv cache   {time.perf_counter() - started:8.2f} s  ({env.path})")
        started = time.perf_counter()
        builder.ensure(REQUIREMENTS + "\nthreadpoolctl", tenant="bench")
        print(f"fresh '{REQUIREMENTS}' env, warm uv cache   {time.perf_counter() - started:8.2f} s")
        hits = []
        for _ in range(200):
            started = time.perf_counter()
            assert builder.ensure(REQUIREMENTS, tenant="bench").cached
            hits.append(time.perf_counter() - started)
        print(f"cache hit, in a warm process            {statistics.median(hits) * 1000:8.3f} ms (median of 200)")
        code = (
            "import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter();"
            "from sandbox.environments import EnvironmentBuilder; from pathlib import Path;"
            "t1 = time.perf_counter();"
            "e = EnvironmentBuilder(root=Path(sys.argv[2])).ensure('scikit-learn', tenant='bench');"
            "assert e.cached; print((t1 - t) * 1000, (time.perf_counter() - t1) * 1000)"
        )
        argv = [sys.executable, "-c", code, str(ROOT), str(root / "envs")]
        runs = [subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split() for _ in range(5)]
        imports = statistics.median(float(r[0]) for r in runs)
        first = statistics.median(float(r[1]) for r in runs)
        print(f"cache hit, first call in a new process  {first:8.3f} ms (interpreter version probe + lookup;")
        print(f"                                        importing the package once costs {imports:.0f} ms more)")
        out = subprocess.run(
            [str(env.python), "-c", "import sklearn; print(sklearn.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"scikit-learn {out} imports from the built environment")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
