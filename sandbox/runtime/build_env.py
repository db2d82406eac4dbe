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

On Nomad (a build job, ``nomad-jobs/build.json.j2``) two more things come from the job's environment:
``PODIUM_ENV_DIR`` is where to build (the task's ``local/env``, the path every job that uses the environment
unpacks it at, since a venv holds absolute paths), and ``PODIUM_UPLOAD_URL`` is a signed, expiring URL:

5. pack the environment (a gzip tar of regular files and directories only: a symlink to a file is stored as
   that file, the interpreter included, as ``venv --copies`` would make it; a symlink to a directory is
   left out) with write permission removed, and ``PUT`` it to that URL.

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
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path


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


def run(argv: list[str], env: dict[str, str], cwd: Path, hidden: tuple[str, ...] = ()) -> None:
    """Run one step; the command is echoed with ``hidden`` (the index settings: this host's paths and URLs,
    which members read in the build log) left out."""
    shown = " ".join(arg for arg in argv if arg not in hidden) + (" <the package index settings>" if hidden else "")
    print("$ " + shown, flush=True)
    code = subprocess.call(argv, env=env, cwd=cwd)
    if code != 0:
        raise SystemExit(code)


def _add(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """One entry, with write permission removed; a symlink becomes what it points to (a directory link is
    skipped: ``lib64 -> lib`` would store the environment twice)."""
    if path.is_symlink() and path.is_dir():
        return
    info = tar.gettarinfo(str(path.resolve()) if path.is_symlink() else str(path), arcname=arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode &= 0o555
    if info.isfile():
        with open(path, "rb") as data:
            tar.addfile(info, data)
    elif info.isdir():
        tar.addfile(info)


def pack_and_upload(venv: Path, url: str) -> None:
    print("podium: packing the environment", flush=True)
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as archive:
        with tarfile.open(fileobj=archive, mode="w:gz", compresslevel=3) as tar:
            for dirpath, dirnames, filenames in os.walk(venv):
                dirnames.sort()
                base = Path(dirpath)
                for name in sorted(dirnames) + sorted(filenames):
                    _add(tar, base / name, str((base / name).relative_to(venv)))
        size = archive.tell()
        archive.seek(0)
        print(f"podium: uploading the environment ({size / 1048576:.1f} MiB)", flush=True)
        request = urllib.request.Request(url, data=archive, method="PUT",  # noqa: S310 - Podium's own URL
                                         headers={"Content-Type": "application/gzip", "Content-Length": str(size)})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            print(f"podium: the upload was refused ({exc.code}): {exc.read().decode(errors='replace').strip()}",
                  flush=True)
            raise SystemExit(3) from None
        except OSError as exc:
            print(f"podium: the upload failed: {exc}", flush=True)
            raise SystemExit(3) from None


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    env = dict(os.environ)
    env.update(plan.get("env", {}))
    start_proxy_forwarder(env)
    bundle_copy = Path(tempfile.gettempdir()) / "bundle"  # the sandbox's own /tmp (on Nomad: the task's)
    bundle_copy.mkdir(parents=True, exist_ok=True)
    for rel in plan.get("bundle_paths", []):
        shutil.copytree(Path("/artifacts") / rel, bundle_copy / rel, symlinks=True, dirs_exist_ok=True)
    requirements = bundle_copy / "requirements.txt"
    requirements.write_text(plan["requirements"] + "\n")
    venv = Path(os.environ.get("PODIUM_ENV_DIR") or plan["venv"])
    uv = plan["uv"]
    print("podium: creating the environment", flush=True)
    run([uv, "venv", "--python", plan["python"], "--no-project", "--no-config", str(venv)], env, bundle_copy)
    if plan["requirements"].strip():
        print("podium: installing the requirements" + (" (wheels only)" if plan.get("no_build") else ""),
              flush=True)
        argv = [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--no-progress", "--no-config",
                "-r", str(requirements), *plan.get("index_args", [])]
        for constraint in plan.get("constraints", []):  # named relative to the plan
            argv += ["--constraint", str(Path(sys.argv[1]).parent / constraint)]
        if plan.get("no_build"):
            argv.append("--no-build")
        hidden = (*plan.get("index_args", []), *(a for a in argv if a.endswith(".txt") and "constraint" in a))
        run(argv, env, bundle_copy, hidden=tuple(hidden) + ("--constraint",))
    print("podium: compiling bytecode", flush=True)
    subprocess.call([str(venv / "bin" / "python"), "-I", "-S", "-m", "compileall", "-q", "-j", "0",
                     str(venv / "lib")], env=env, cwd=bundle_copy, stdout=subprocess.DEVNULL)
    print("podium: environment built", flush=True)
    if os.environ.get("PODIUM_UPLOAD_URL"):
        pack_and_upload(venv, os.environ["PODIUM_UPLOAD_URL"])
        print("podium: environment uploaded", flush=True)


if __name__ == "__main__":
    main()
