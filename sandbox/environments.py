"""Environments: virtual environments built with uv from a version's
requirements, cached and shared read-only by every sandbox that uses them.

- **key**: sha256 of the normalised requirements, the sandbox Python's full
  version, the platform and the *variant*; the venv lives at ``<root>/<key>``.
- **variant**: ``cpu`` or ``gpu``. A CPU environment prefers the host's local
  ``+cpu`` builds of torch & co. (found in pip's find-links) whenever the
  requirements allow them, so that a CPU-only host does not fetch a multi-GB
  CUDA build.
- **ready marker**: ``<root>/<key>/.podium-env.json``, written last; an
  environment without it is a failed or interrupted build and is rebuilt.

Concurrent requests for one key build it once: builders take an exclusive
``flock`` on ``<root>/.locks/<key>.lock`` and re-check the marker after
acquiring it. Builds honour the host's pip configuration (``pip config list``
and ``PIP_*``), translated into uv flags, because uv does not read pip's files.

Sandboxes bind environments read-only; the interpreter must be world-reachable
(``/usr/bin/python3`` by default, or ``PODIUM_SANDBOX_PYTHON``).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sandbox.config import SandboxConfig
from sandbox.errors import EnvironmentBuildError
from sandbox.paths import unreachable_reason

MARKER = ".podium-env.json"
Variant = Literal["cpu", "gpu"]
OutputCallback = Callable[[str], None]
# pip setting -> uv flag; list-valued settings repeat the flag per item.
PIP_TO_UV = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
SCOPE_ORDER = {"global": 0, "user": 1, "site": 2, "env": 3, ":env:": 3}
CPU_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+\+cpu)-.*\.whl$")


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    python_version: str
    variant: Variant
    cached: bool
    build_seconds: float = 0.0

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def normalise_requirements(requirements: str) -> str:
    """One requirement per line, comments and blanks dropped, sorted, deduplicated."""
    lines = set()
    for raw in requirements.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.add(line)
    return "\n".join(sorted(lines))


def read_pip_config(environ: Mapping[str, str] | None = None, pip_config_list: str | None = None) -> dict[str, str]:
    """The effective pip settings: ``pip config list`` output, overridden by ``PIP_*``."""
    environ = os.environ if environ is None else environ
    if pip_config_list is None:
        pip_config_list = _pip_config_list()
    ranked: list[tuple[int, str, str]] = []
    for line in pip_config_list.splitlines():
        name, sep, raw = line.partition("=")
        if not sep:
            continue
        scope, _, key = name.rpartition(".")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        ranked.append((SCOPE_ORDER.get(scope, 1), key, str(value)))
    settings = {key: value for _, key, value in sorted(ranked, key=lambda item: item[0])}
    for name, value in environ.items():
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            settings[name[4:].lower().replace("_", "-")] = value
    return settings


@cache
def _pip_config_list() -> str:
    try:
        return subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def uv_index_args(settings: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv flags and environment equivalent to pip's index settings."""
    args: list[str] = []
    env: dict[str, str] = {}
    for key, flag in PIP_TO_UV.items():
        for item in settings.get(key, "").split():
            args += [flag, item]
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if settings.get("extra-index-url"):
        # pip picks the best match across every index; uv's default stops at
        # the first index that has the package. Keep pip's semantics.
        args += ["--index-strategy", "unsafe-best-match"]
    if settings.get("cert"):
        env["SSL_CERT_FILE"] = settings["cert"]
    timeout = settings.get("default-timeout") or settings.get("timeout")
    if timeout:
        env["UV_HTTP_TIMEOUT"] = timeout
    return args, env


def local_cpu_wheels(settings: Mapping[str, str]) -> dict[str, str]:
    """Canonical name -> version of ``+cpu`` wheels in pip's local find-links dirs."""
    found: dict[str, str] = {}
    for location in settings.get("find-links", "").split():
        parsed = urlparse(location)
        directory = Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else None
        if directory is None or not directory.is_dir():
            continue
        for wheel in directory.glob("*+cpu-*.whl"):
            match = CPU_WHEEL.match(wheel.name)
            if match:
                found[canonicalize_name(match["name"])] = match["version"]
    return found


def cpu_preferences(requirements: str, cpu_wheels: Mapping[str, str]) -> list[str]:
    """Constraints pinning directly requested packages to the host's +cpu build,
    only where the request admits that version."""
    pins = []
    for line in requirements.splitlines():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        version = cpu_wheels.get(name)
        if version and req.url is None and req.specifier.contains(version, prereleases=True):
            pins.append(f"{name}=={version}")
    return pins


@cache
def python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


def default_python() -> str:
    """A world-reachable interpreter of this Python's minor version."""
    configured = os.environ.get("PODIUM_SANDBOX_PYTHON", "").strip()
    if configured:
        return configured
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), f"/usr/bin/{minor}", f"/usr/local/bin/{minor}", "/usr/bin/python3"]
    for candidate in candidates:
        if os.path.exists(candidate) and unreachable_reason(Path(candidate)) is None:
            return candidate
    raise EnvironmentBuildError(
        f"no Python that sandboxes can run was found (tried {', '.join(candidates)}); "
        "set PODIUM_SANDBOX_PYTHON to a world-readable interpreter"
    )


class EnvironmentBuilder:
    """Builds and caches environments under ``root`` (``<var>/sandbox/envs``)."""

    def __init__(
        self,
        root: Path | None = None,
        python: str | None = None,
        uv: str | None = None,
        pip_settings: Mapping[str, str] | None = None,
        timeout: float = 3600.0,
    ) -> None:
        self.root = root or SandboxConfig.from_env().envs_dir
        self._python = python
        self.uv = uv or _find_uv()
        self._pip_settings = dict(pip_settings) if pip_settings is not None else None
        self.timeout = timeout

    @property
    def python(self) -> str:
        if self._python is None:
            self._python = default_python()
        return self._python

    @property
    def pip_settings(self) -> dict[str, str]:
        if self._pip_settings is None:
            self._pip_settings = read_pip_config()
        return self._pip_settings

    def key(self, requirements: str, variant: Variant = "cpu") -> str:
        material = json.dumps(
            {
                "requirements": normalise_requirements(requirements),
                "python": python_version(self.python),
                "platform": f"{sys.platform}-{platform.machine()}",
                "variant": variant,
                "layout": 2,  # 2: bytecode compiled at build time
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def lookup(self, requirements: str, variant: Variant = "cpu") -> Environment | None:
        """The ready environment for these requirements, or None. Never builds."""
        key = self.key(requirements, variant)
        path = self.root / key
        try:
            marker = json.loads((path / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return Environment(
            key=key,
            path=path,
            python_version=marker["python"],
            variant=variant,
            cached=True,
            build_seconds=marker.get("seconds", 0.0),
        )

    def ensure(
        self, requirements: str, variant: Variant = "cpu", on_output: OutputCallback | None = None
    ) -> Environment:
        """Return the environment, building it if needed (once, even when several
        processes ask at the same time). ``on_output`` receives each line of build
        output as it is produced; it is also kept in ``<root>/<key>.log``.
        Raises ``EnvironmentBuildError`` carrying uv's own error output."""
        found = self.lookup(requirements, variant)
        if found is not None:
            return found
        key = self.key(requirements, variant)
        with self._lock(key):
            found = self.lookup(requirements, variant)
            if found is not None:
                return found
            return self._build(key, requirements, variant, on_output)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build(self, key: str, requirements: str, variant: Variant, on_output: OutputCallback | None) -> Environment:
        self.root.chmod(0o755)
        path = self.root / key
        shutil.rmtree(path, ignore_errors=True)
        started = time.monotonic()
        normalised = normalise_requirements(requirements)
        _, index_env = uv_index_args(self.pip_settings)
        env = {
            **os.environ,
            **index_env,
            "UV_CACHE_DIR": str(self.root / ".uv-cache"),
            "UV_NO_CONFIG": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "NO_COLOR": "1",
        }
        for name in list(env):
            if name.startswith("PIP_") or name == "VIRTUAL_ENV":
                del env[name]
        log_path = self.root / f"{key}.log"
        with open(log_path, "w") as log, tempfile.TemporaryDirectory(dir=self.root) as tmp:

            def emit(line: str) -> None:
                log.write(line + "\n")
                log.flush()
                if on_output is not None:
                    on_output(line)

            self._run([self.uv, "venv", "--python", self.python, "--no-project", str(path)], env, emit, path)
            if normalised:
                pins = self._cpu_pins(normalised, variant)
                if pins:
                    emit(f"podium: using this host's CPU builds: {', '.join(pins)}")
                self._run(self.install_plan(normalised, path, variant, Path(tmp)), env, emit, path)
        marker: dict[str, Any] = {
            "key": key,
            "python": python_version(self.python),
            "variant": variant,
            "requirements": normalised,
            "seconds": round(time.monotonic() - started, 3),
            "built_at": time.time(),
        }
        (path / MARKER).write_text(json.dumps(marker))
        _make_world_readable(path)
        return Environment(
            key=key,
            path=path,
            python_version=marker["python"],
            variant=variant,
            cached=False,
            build_seconds=marker["seconds"],
        )

    def _cpu_pins(self, requirements: str, variant: Variant) -> list[str]:
        if variant != "cpu":
            return []
        return cpu_preferences(normalise_requirements(requirements), local_cpu_wheels(self.pip_settings))

    def install_plan(
        self, requirements: str, venv: Path, variant: Variant = "cpu", workdir: Path | None = None
    ) -> list[str]:
        """The ``uv pip install`` command line that builds ``requirements`` into
        ``venv``; its input files are written to ``workdir`` (default: beside the venv)."""
        workdir = workdir or venv.parent
        workdir.mkdir(parents=True, exist_ok=True)
        req_file = workdir / "requirements.txt"
        req_file.write_text(normalise_requirements(requirements) + "\n")
        index_args, _ = uv_index_args(self.pip_settings)
        # Sandboxes mount environments read-only, so Python could never cache bytecode for them itself:
        # compiled at build time, imports in every sandbox start (and every test run) are 2-3x faster.
        argv = [self.uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--no-progress",
                "--compile-bytecode"]
        argv += ["-r", str(req_file), *index_args]
        pins = self._cpu_pins(requirements, variant)
        if pins:
            pin_file = workdir / "cpu-builds.txt"
            pin_file.write_text("\n".join(pins) + "\n")
            argv += ["--constraint", str(pin_file)]
        return argv

    def _run(self, argv: list[str], env: dict[str, str], emit: OutputCallback, path: Path) -> None:
        emit("$ " + " ".join(argv))
        tail: list[str] = []
        old_umask = os.umask(0o022)
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=self.root,
                errors="replace",
            )
        finally:
            os.umask(old_umask)
        assert proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-200:]
            emit(line)
            if time.monotonic() > deadline:
                proc.kill()
                emit(f"podium: build took longer than {self.timeout:g} s")
                break
        code = proc.wait()
        if code != 0:
            shutil.rmtree(path, ignore_errors=True)
            output = "\n".join(tail)
            starts = [n for n, line in enumerate(tail) if line.lstrip().lower().startswith(("error", "×"))]
            summary = "\n".join(tail[starts[0] :][:25] if starts else tail[-12:])
            raise EnvironmentBuildError(f"building the environment failed:\n{summary}", output=output)


def _find_uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        raise EnvironmentBuildError("uv is not installed: pip install uv") from None


def _make_world_readable(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            target = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(target).st_mode
                if mode & 0o170000 != 0o120000:  # not a symlink
                    os.chmod(target, mode | 0o444 | (0o111 if mode & 0o100 else 0))
