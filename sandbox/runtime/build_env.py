"""Builds one environment INSIDE a build sandbox (standard library only).

Started by ``sandbox.environments.EnvironmentBuilder`` as ``python -I build_env.py /code/plan.json`` in a
sandbox of purpose ``build``: an unprivileged uid, no platform environment, writable only the new
environment (at its final path), the build scope's uv cache (``/cache``) and ``/tmp``. The plan says what to
run; this script only runs it:

1. when ``PODIUM_INDEX_PROXY`` is set, forward a loopback port to that unix socket (the supervisor's
   package-index proxy: the only network a build has) and point uv's ``HTTPS_PROXY`` at it;
2. copy the bundle's own packages (``/artifacts/<path>``) to ``/tmp/bundle`` so their build backends may
   write next to their sources;
3. ``uv venv``, then ``uv pip install`` the requirements (with ``--no-build`` for a shared build: nothing
   but uv runs then);
4. compile bytecode with ``python -I -S -m compileall``: environments are mounted read-only, so Python could
   never cache it itself, and ``-S`` keeps the installed packages' ``.pth`` files from running.

Each step prints a ``podium:`` line; the exit status is the failing step's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

BUNDLE_COPY = Path("/tmp/bundle")  # noqa: S108 - the sandbox's own /tmp


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _forward(listener: socket.socket, unix_path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(unix_path)
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()


def start_proxy_forwarder(env: dict[str, str]) -> None:
    target = env.get("PODIUM_INDEX_PROXY", "")
    if not target.startswith("unix:"):
        return
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=_forward, args=(listener, target[5:]), daemon=True).start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        env[name] = proxy
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)


def run(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    print("$ " + " ".join(argv), flush=True)
    code = subprocess.call(argv, env=env, cwd=cwd)
    if code != 0:
        raise SystemExit(code)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    env = dict(os.environ)
    env.update(plan.get("env", {}))
    start_proxy_forwarder(env)
    BUNDLE_COPY.mkdir(parents=True, exist_ok=True)
    for rel in plan.get("bundle_paths", []):
        shutil.copytree(Path("/artifacts") / rel, BUNDLE_COPY / rel, symlinks=True, dirs_exist_ok=True)
    requirements = BUNDLE_COPY / "requirements.txt"
    requirements.write_text(plan["requirements"] + "\n")
    venv = Path(plan["venv"])
    uv = plan["uv"]
    print("podium: creating the environment", flush=True)
    run([uv, "venv", "--python", plan["python"], "--no-project", "--no-config", str(venv)], env, BUNDLE_COPY)
    if plan["requirements"].strip():
        print("podium: installing the requirements" + (" (wheels only)" if plan.get("no_build") else ""),
              flush=True)
        argv = [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--no-progress", "--no-config",
                "-r", str(requirements), *plan.get("index_args", [])]
        for constraint in plan.get("constraints", []):
            argv += ["--constraint", constraint]
        if plan.get("no_build"):
            argv.append("--no-build")
        run(argv, env, BUNDLE_COPY)
    print("podium: compiling bytecode", flush=True)
    subprocess.call([str(venv / "bin" / "python"), "-I", "-S", "-m", "compileall", "-q", "-j", "0",
                     str(venv / "lib")], env=env, cwd=BUNDLE_COPY, stdout=subprocess.DEVNULL)
    print("podium: environment built", flush=True)


if __name__ == "__main__":
    main()
