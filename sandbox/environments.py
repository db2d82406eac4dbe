"""Environments: virtual environments built with uv from a version's
requirements, cached and shared read-only by every sandbox that uses them.

- **key**: sha256 of the checked, normalised requirements, the sandbox Python's
  full version, the platform, the *variant*, the package index configuration
  and the *scope* (``shared``, or the tenant whose build code ran, with a hash
  of the bundle's packages it installed); the venv lives at ``<root>/<key>``.
- **build**: a sandbox of purpose ``build`` (``sandbox/runtime/build_env.py``),
  never this process: see ``EnvironmentBuilder``. Requirement lines are checked
  first (``sandbox.requirements``).
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
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sandbox.config import SandboxConfig
from sandbox.errors import EnvironmentBuildError, RequirementRefused
from sandbox.paths import unreachable_reason
from sandbox.requirements import CheckedRequirements, check_requirements
from sandbox.spec import CODE_MOUNT, ENV_MOUNT, Limits, Network, Resources, SandboxSpec, State

if TYPE_CHECKING:
    from sandbox.executors.base import Executor

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
def pip_config_fingerprint() -> str:
    """A hash of what decides where packages come from: pip's configuration files (as ``pip config list``
    reads them) and the ``PIP_*`` environment. Reading the files is cheap; ``pip config list`` takes a
    quarter of a second, too long for a cache hit's first call in a process."""
    home = Path.home()
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    candidates = [Path("/etc/pip.conf"), *(Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d),
                  Path(sys.prefix) / "pip.conf", home / ".pip" / "pip.conf",
                  Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "pip" / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        candidates.append(Path(os.environ["PIP_CONFIG_FILE"]))
    digest = hashlib.sha256()
    for path in candidates:
        with contextlib.suppress(OSError):
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in sorted(n for n in os.environ if n.startswith("PIP_")):
        digest.update(f"{name}={os.environ[name]}\0".encode())
    return digest.hexdigest()


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


def uv_index_args(settings: Mapping[str, str], with_constraints: bool = True) -> tuple[list[str], dict[str, str]]:
    """uv flags and environment equivalent to pip's index settings."""
    args: list[str] = []
    env: dict[str, str] = {}
    for key, flag in PIP_TO_UV.items():
        if key == "constraint" and not with_constraints:
            continue
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


SHARED = "shared"
NO_BUILD_REFUSAL = "building from source is disabled"
RUNTIME_SCRIPT = Path(__file__).resolve().parent / "runtime" / "build_env.py"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise EnvironmentBuildError(f"{name}={raw!r} is not an integer") from None


class EnvironmentBuilder:
    """Builds and caches environments under ``root`` (``<var>/sandbox/envs``).

    Building an environment runs code (an sdist's build backend), so it happens in a sandbox of purpose
    ``build`` started by the executor, never in this process: an unprivileged uid, no platform
    environment, the package index as its only network, writable only the new environment and its scope's
    uv cache, with limits on time, memory, disk and processes; the environment is sealed read-only when the
    build succeeds.

    **Scopes.** Requirements that name only packages of the index are first built *shared* with
    ``--no-build``: only uv runs (it unpacks wheels), so the result depends on nothing but the requirements
    and the index, and any workspace with the same requirements and index may use it. Otherwise (an sdist,
    a bundle path, a URL) the build runs the tenant's chosen code, so it is keyed by ``tenant`` and uses
    that tenant's own uv cache: no other tenant is ever handed it.
    """

    def __init__(
        self,
        root: Path | None = None,
        python: str | None = None,
        uv: str | None = None,
        pip_settings: Mapping[str, str] | None = None,
        timeout: float | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.root = root or SandboxConfig.from_env().envs_dir
        self._python = python
        # The build sandbox mounts uv's real file, so run it by that path: through a linked venv
        # (.venv -> another checkout's) the link's path does not exist inside the sandbox.
        self.uv = os.path.realpath(uv or _find_uv())
        self._pip_settings = dict(pip_settings) if pip_settings is not None else None
        self._given_settings = pip_settings is not None  # else this host's pip configuration, read when building
        self.timeout = timeout if timeout is not None else float(_env_int("PODIUM_BUILD_WALL_S", 1800))
        self._executor = executor

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            from sandbox import get_executor

            self._executor = get_executor()
        return self._executor

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

    def key(self, requirements: str, variant: Variant = "cpu", *, scope: str = SHARED, bundle_digest: str = "") -> str:
        index = json.dumps(self._pip_settings, sort_keys=True) if self._given_settings else pip_config_fingerprint()
        material = json.dumps(
            {
                "requirements": normalise_requirements(requirements),
                "python": python_version(self.python),
                "platform": f"{sys.platform}-{platform.machine()}",
                "variant": variant,
                "index": index,
                "scope": scope,
                "bundle": bundle_digest,
                "layout": 4,  # 3: built in a build sandbox, sealed read-only; 4: at ENV_MOUNT
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def _candidates(self, checked: CheckedRequirements, variant: Variant, tenant: str,
                    bundle: Path | None) -> list[tuple[str, str, str]]:
        """(scope, key, bundle digest) to look for, best first."""
        text = checked.text()
        digest = _bundle_digest(bundle, checked.bundle_paths) if checked.bundle_paths else ""
        found = []
        if checked.index_only:
            found.append((SHARED, self.key(text, variant), ""))
        found.append((tenant, self.key(text, variant, scope=tenant, bundle_digest=digest), digest))
        return found

    def lookup(self, requirements: str, variant: Variant = "cpu", *, tenant: str,
               bundle: Path | None = None) -> Environment | None:
        """The ready environment for these requirements, or None (also for requirements that could never be
        built: ``ensure`` says why). Never builds."""
        try:
            checked = check_requirements(requirements, bundle=bundle, allow_urls=True)
        except RequirementRefused:
            return None
        for _, key, _ in self._candidates(checked, variant, tenant, bundle):
            found = self._ready(key, variant)
            if found is not None:
                return found
        return None

    def _ready(self, key: str, variant: Variant) -> Environment | None:
        path = self.root / key
        try:
            marker = json.loads((path / MARKER).read_text())
        except (OSError, ValueError):
            return None
        if marker.get("requirements") and not self._usable_here(path):
            return None  # built for the other executor (or by a Podium that installed per allocation): rebuild
        return Environment(key=key, path=path, python_version=marker["python"], variant=variant, cached=True,
                           build_seconds=marker.get("seconds", 0.0))

    def ensure(
        self,
        requirements: str,
        variant: Variant = "cpu",
        on_output: OutputCallback | None = None,
        *,
        tenant: str,
        bundle: Path | None = None,
        allow_urls: bool = False,
    ) -> Environment:
        """Return the environment, building it if needed (once, even when several processes ask at the
        same time). ``tenant`` names whose build code may run (a workspace: ``w<id>``); ``bundle`` is the
        bundle's root, for requirements that are paths inside it; ``allow_urls`` is the workspace's network
        setting. ``on_output`` receives each line of build output as it is produced; it is also kept in
        ``<root>/<key>.log``. Raises ``RequirementRefused`` naming a line that cannot be installed safely,
        and ``EnvironmentBuildError`` carrying the build's own error output."""
        checked = check_requirements(requirements, bundle=bundle, allow_urls=allow_urls)
        candidates = self._candidates(checked, variant, tenant, bundle)
        for _, key, _ in candidates:
            found = self._ready(key, variant)
            if found is not None:
                return found
        for scope, key, _ in candidates:
            with self._lock(key):
                found = self._ready(key, variant)
                if found is not None:
                    return found
                try:
                    return self._build(key, checked, variant, on_output, scope=scope, bundle=bundle)
                except EnvironmentBuildError as exc:
                    if scope != SHARED or NO_BUILD_REFUSAL not in exc.output:
                        raise
                    if on_output is not None:
                        on_output("podium: a package has no wheel for this platform; building it from source "
                                  "for this workspace alone")
        raise AssertionError("the last candidate is always built")  # pragma: no cover

    def _usable_here(self, path: Path) -> bool:
        """Nomad jobs fetch the archive a build job uploaded; local sandboxes bind the venv itself."""
        if self.executor.name == "nomad":
            return archive_path(path).is_file()
        return (path / "bin").is_dir()

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

    def _build(self, key: str, checked: CheckedRequirements, variant: Variant, on_output: OutputCallback | None,
               *, scope: str, bundle: Path | None) -> Environment:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        path = self.root / key
        _remove(path)
        started = time.monotonic()
        normalised = checked.text()
        log_path = self.root / f"{key}.log"
        with open(log_path, "w") as log:

            def emit(line: str) -> None:
                log.write(line + "\n")
                log.flush()
                if on_output is not None:
                    on_output(line)

            if self.executor.name == "nomad":
                if checked.bundle_paths:
                    raise EnvironmentBuildError("requirements that are paths in the bundle cannot be built on the "
                                                "Nomad executor yet; publish the package to your index")
                self._build_on_nomad(path, checked, variant, emit, scope=scope)
            else:
                self._build_in_sandbox(path, checked, variant, emit, scope=scope, bundle=bundle)
        marker: dict[str, Any] = {
            "key": key,
            "python": python_version(self.python),
            "variant": variant,
            "scope": "shared" if scope == SHARED else "workspace",
            "requirements": normalised,
            "seconds": round(time.monotonic() - started, 3),
            "built_at": time.time(),
        }
        if self.executor.name == "nomad" and normalised.strip():
            marker["archive"] = archive_path(path).name  # what Nomad jobs fetch, uploaded by the build job
        (path / MARKER).write_text(json.dumps(marker))
        (path / MARKER).chmod(0o444)
        return Environment(key=key, path=path, python_version=marker["python"], variant=variant, cached=False,
                           build_seconds=marker["seconds"])

    def _build_in_sandbox(self, path: Path, checked: CheckedRequirements, variant: Variant, emit: OutputCallback,
                          *, scope: str, bundle: Path | None) -> None:
        path.mkdir(mode=0o755)
        cache = self.root / ".cache" / scope
        cache.mkdir(parents=True, exist_ok=True)
        (self.root / ".cache").chmod(0o711)
        workdir = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
        try:
            spec = self.build_spec(path, checked, variant, workdir, cache, scope=scope, bundle=bundle)
            self._run_build(spec, path, emit)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _build_on_nomad(self, path: Path, checked: CheckedRequirements, variant: Variant, emit: OutputCallback,
                        *, scope: str) -> None:
        """Build once, in a Nomad build job: it builds the venv at ``local/env`` in its task, packs it and
        uploads it (a signed PUT) as ``<root>/<key>.tar.gz``; the jobs that use it fetch that archive. With no
        requirements there is nothing to build: those jobs run the client's interpreter directly."""
        path.mkdir(mode=0o755)
        archive = archive_path(path)
        archive.unlink(missing_ok=True)  # left by an interrupted build: the upload never replaces an archive
        if not checked.text().strip():
            emit("podium: no requirements; sandboxes run the cluster's Python directly, nothing to build")
            return
        workdir = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
        try:
            workdir.chmod(0o755)
            spec = self.nomad_build_spec(path, checked, variant, workdir, scope=scope)
            self._run_build(spec, path, emit)
        except BaseException:
            archive.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if not archive.is_file():
            _remove(path)
            raise EnvironmentBuildError("building the environment failed: the build job ended without uploading "
                                        "the environment (is PODIUM_ARTIFACT_URL reachable from Nomad clients?)")

    def _run_build(self, spec: SandboxSpec, path: Path, emit: OutputCallback) -> None:
        """Start the build sandbox, follow its output to ``emit``, and raise its own error if it fails."""
        handle = self.executor.start(spec)
        tail: list[str] = []
        try:
            for line in self.executor.logs(handle, follow=True):
                text = self._redact(line.text, path)
                tail = (tail + [text])[-200:]
                emit(text)
            status = self.executor.wait(handle, timeout=30)
        finally:
            self.executor.stop(handle, grace_s=1)
        if status.state != State.EXITED:
            _remove(path)
            output = "\n".join(tail)
            starts = [n for n, line in enumerate(tail) if line.lstrip().lower().startswith(("error", "×"))]
            summary = "\n".join(tail[starts[0]:][:25] if starts else tail[-12:])
            if status.limit or not tail:
                summary = f"{summary}\n{status.reason or ''}".strip()
            raise EnvironmentBuildError(f"building the environment failed:\n{summary}", output=output)

    def _redact(self, text: str, path: Path) -> str:
        """Build output is shown to members: this host's paths become names."""
        text = text.replace(str(path), "<environment>").replace(os.path.realpath(self.uv), "uv")
        return text.replace(self.uv, "uv").replace(str(self.root), "<envs>")

    def nomad_build_spec(self, path: Path, checked: CheckedRequirements, variant: Variant, workdir: Path,
                         *, scope: str) -> SandboxSpec:
        """The Nomad build job's spec: the local build's plan, with the client's uv and interpreter (by
        version), no shared cache and no host paths; ``output_dir`` names the environment, whose archive
        the job uploads."""
        spec = self.build_spec(path, checked, variant, workdir, None, scope=scope, bundle=None,
                               python=f"python{'.'.join(python_version(self.python).split('.')[:2])}",
                               uv=self.executor.config.settings.uv)  # type: ignore[attr-defined]
        return spec.model_copy(update={"read_only_paths": []})

    def build_spec(self, path: Path, checked: CheckedRequirements, variant: Variant, workdir: Path,
                   cache: Path | None, *, scope: str, bundle: Path | None, python: str | None = None,
                   uv: str | None = None) -> SandboxSpec:
        """The build sandbox's spec; its plan (``plan.json``) and script are written to ``workdir``.
        ``python`` and ``uv`` name the build host's tools when it is not this one."""
        normalised = checked.text()
        python = python or self.python
        uv_path = uv or os.path.realpath(self.uv)  # what _read_only_paths binds: uv reached by a symlink too
        index_args, index_env = uv_index_args(self.pip_settings, with_constraints=False)
        constraints = []
        for n, item in enumerate(self.pip_settings.get("constraint", "").split()):
            source = Path(unquote(urlparse(item).path) if item.startswith("file:") else item)
            if source.is_file():
                (workdir / f"constraints-{n}.txt").write_text(source.read_text())
                constraints.append(f"constraints-{n}.txt")  # beside the plan
        pins = self._cpu_pins(normalised, variant)
        if pins:
            emit_pins = "\n".join(pins) + "\n"
            (workdir / "cpu-builds.txt").write_text(emit_pins)
            constraints.append("cpu-builds.txt")
        plan = {
            "venv": ENV_MOUNT,
            "python": python,
            "uv": uv_path,
            "requirements": normalised,
            "index_args": index_args,
            "constraints": constraints,
            "no_build": scope == SHARED,
            "bundle_paths": checked.bundle_paths,
            "env": {**index_env, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "UV_NO_PROGRESS": "1",
                    # the cache and the environment are separate mounts: a hard link cannot cross them
                    "UV_LINK_MODE": "copy"},
        }
        (workdir / "plan.json").write_text(json.dumps(plan))
        shutil.copy(RUNTIME_SCRIPT, workdir / "build_env.py")
        for written in workdir.iterdir():
            written.chmod(0o444)
        workdir.chmod(0o755)
        return SandboxSpec(
            workspace="podium" if scope == SHARED else scope,
            name="environment-build",
            purpose="build",
            command=[python, "-I", f"{CODE_MOUNT}/build_env.py", f"{CODE_MOUNT}/plan.json"],
            code_dir=workdir,
            artifact_dir=bundle if checked.bundle_paths else None,
            output_dir=path,
            cache_dir=cache,
            read_only_paths=self._read_only_paths(),
            resources=Resources(cpu=float(os.cpu_count() or 1),
                                memory_mib=_env_int("PODIUM_BUILD_MEMORY_MIB", 4096)),
            limits=Limits(wall_time_s=self.timeout, disk_mib=_env_int("PODIUM_BUILD_DISK_MIB", 10240),
                          pids=1024, nofile=4096),
            network=Network.INDEX,
        )

    def _read_only_paths(self) -> list[Path]:
        """What the installer reads from this host: uv, the interpreter (when outside /usr), local indexes."""
        paths = {Path(os.path.realpath(self.uv))}
        python = Path(os.path.realpath(self.python))
        if not python.is_relative_to("/usr"):
            paths.add(python.parent.parent)
        for key in ("find-links", "extra-index-url", "index-url"):
            for item in self.pip_settings.get(key, "").split():
                parsed = urlparse(item)
                if parsed.scheme not in ("", "file"):
                    continue
                local = Path(unquote(parsed.path))
                # a file index's pages link to its files beside "simple/" (../../files/...)
                local = local.parent if local.name == "simple" else local
                if local.is_dir():
                    paths.add(local)
        cert = self.pip_settings.get("cert")
        if cert and Path(cert).is_file() and not Path(cert).is_relative_to("/etc/ssl"):
            paths.add(Path(cert))
        return sorted(p for p in paths if p.exists() and not p.is_relative_to("/usr"))

    def _cpu_pins(self, requirements: str, variant: Variant) -> list[str]:
        if variant != "cpu":
            return []
        return cpu_preferences(normalise_requirements(requirements), local_cpu_wheels(self.pip_settings))


def archive_path(environment: Path) -> Path:
    """Where a Nomad-built environment's archive is kept: ``<root>/<key>.tar.gz``, beside its directory
    (the artifact view serves it at the URL the executor signs for the environment)."""
    return environment.with_name(f"{environment.name}.tar.gz")


def _bundle_digest(bundle: Path | None, rels: list[str]) -> str:
    """A hash of the files under the bundle paths a build installs: another version of the same package in
    the bundle is another environment."""
    digest = hashlib.sha256()
    if bundle is None:
        return ""
    for rel in rels:
        base = bundle / rel
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                file = Path(dirpath) / name
                digest.update(str(file.relative_to(bundle)).encode() + b"\0")
                if not file.is_symlink():
                    digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _remove(path: Path) -> None:
    """Remove an environment, sealed (read-only) or not."""
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
            with contextlib.suppress(OSError):
                os.chmod(name, 0o700)  # root needs none of this; an owner that is not root does
    shutil.rmtree(path, ignore_errors=True)


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
