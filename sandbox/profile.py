"""The bubblewrap profile of a local sandbox replica, read top to bottom:
identity, namespaces, the seccomp filter (``sandbox.seccomp``: no ptrace), mounts
(one per line), environment, command.

Only ``scratch`` (``/scratch`` and ``/tmp``, one size-limited tmpfs owned by the
replica's uid) and the socket directory (``/run/podium``) are writable. The
system is bound read-only and only the parts a Python program needs; /etc is a
short list, with synthetic passwd/group files (no shadow, no host users).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandbox.spec import ARTIFACT_MOUNT, CODE_MOUNT, ENV_MOUNT, SandboxSpec

SOCKET_DIR = "/run/podium"
SERVER_SOCKET = f"{SOCKET_DIR}/server.sock"
INDEX_PROXY_SOCKET = f"{SOCKET_DIR}/index-proxy.sock"  # builds: the only way to the package index
BUILD_CACHE = "/cache"
SYSTEM_BINDS = ("/usr",)
SYSTEM_SYMLINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"))
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
    "/etc/nsswitch.conf",
)


@dataclass(frozen=True)
class ReplicaPlan:
    """Everything host-specific about one replica that the profile needs."""

    sandbox_id: str
    index: int
    uid: int
    run_dir: Path  # host: <var>/sandbox/run/<id>.<index>
    spec: SandboxSpec
    python_prefix: Path | None = None  # base interpreter prefix of the env, when outside /usr
    gpu_devices: list[Path] = field(default_factory=list)
    gpu_control: list[Path] = field(default_factory=list)

    @property
    def scratch(self) -> Path:
        return self.run_dir / "scratch"

    @property
    def socket_dir(self) -> Path:
        return self.run_dir / "sock"

    @property
    def host_socket(self) -> Path:
        return self.socket_dir / "server.sock"


def identity(plan: ReplicaPlan, setpriv: str) -> list[str]:
    # bubblewrap started by root keeps capabilities, so it starts as the
    # replica's own unprivileged uid, with no groups and no capabilities at all.
    return [
        setpriv,
        f"--reuid={plan.uid}",
        f"--regid={plan.uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ]


def namespaces() -> list[str]:
    # --unshare-all includes the network: only loopback exists inside.
    # --disable-userns: no nested user namespace, so no way to regain capabilities.
    return [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]


def mounts(plan: ReplicaPlan) -> list[list[str]]:
    lines: list[list[str]] = [["--ro-bind", path, path] for path in SYSTEM_BINDS]
    lines += [["--symlink", target, link] for target, link in SYSTEM_SYMLINKS]
    lines += [["--ro-bind-try", path, path] for path in ETC_FILES]
    lines += [
        ["--ro-bind", str(plan.run_dir / "passwd"), "/etc/passwd"],
        ["--ro-bind", str(plan.run_dir / "group"), "/etc/group"],
        ["--proc", "/proc"],
        ["--dev", "/dev"],
        ["--bind", str(plan.scratch / "home"), "/scratch"],
        ["--bind", str(plan.scratch / "tmp"), "/tmp"],  # noqa: S108 - the sandbox's own /tmp
        ["--bind", str(plan.socket_dir), SOCKET_DIR],
    ]
    spec = plan.spec
    if spec.code_dir:
        lines.append(["--ro-bind", str(spec.code_dir), CODE_MOUNT])
    if spec.artifact_dir:
        lines.append(["--ro-bind", str(spec.artifact_dir), ARTIFACT_MOUNT])
    if spec.environment:
        # Built at ENV_MOUNT (venvs hold absolute paths: shebangs, pyvenv.cfg), mounted there.
        lines.append(["--ro-bind", str(spec.environment), ENV_MOUNT])
    if plan.python_prefix:
        lines.append(["--ro-bind", str(plan.python_prefix), str(plan.python_prefix)])
    # Builds: what the installer reads at the same path as on the host, the new environment writable at
    # ENV_MOUNT (where every sandbox that uses it will see it), and the build scope's download cache.
    lines += [["--ro-bind", str(path), str(path)] for path in spec.read_only_paths]
    if spec.output_dir:
        lines.append(["--bind", str(spec.output_dir), ENV_MOUNT])
    if spec.cache_dir:
        lines.append(["--bind", str(spec.cache_dir), BUILD_CACHE])
    lines += [["--dev-bind", str(dev), f"/dev/{dev.name}"] for dev in plan.gpu_control + plan.gpu_devices]
    # bwrap builds the root on a tmpfs the sandbox uid owns; freeze it so that
    # only the binds above marked writable are.
    lines.append(["--remount-ro", "/"])
    lines.append(["--chdir", "/scratch"])
    return lines


def environment(plan: ReplicaPlan) -> dict[str, str]:
    # Nothing host-specific: no host paths but the environment (mounted at its own path) and no
    # supervisor ids; a sandbox knows its workspace, purpose and replica index, and no more.
    spec = plan.spec
    path = "/usr/local/bin:/usr/bin:/bin"
    env = {
        "HOME": "/scratch",
        "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's own /tmp
        "USER": "sandbox",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PODIUM_REPLICA": str(plan.index),
        "PODIUM_WORKSPACE": spec.workspace,
        "PODIUM_PURPOSE": spec.purpose,
        "PODIUM_LISTEN": f"unix:{SERVER_SOCKET}",
    }
    if spec.code_dir:
        env["PODIUM_CODE_DIR"] = CODE_MOUNT
    if spec.artifact_dir:
        env["PODIUM_ARTIFACT_DIR"] = ARTIFACT_MOUNT
    if spec.environment:
        env["VIRTUAL_ENV"] = ENV_MOUNT
        path = f"{ENV_MOUNT}/bin:{path}"
    if spec.purpose == "build":
        env["PODIUM_INDEX_PROXY"] = f"unix:{INDEX_PROXY_SOCKET}"
        if spec.cache_dir:
            env["UV_CACHE_DIR"] = BUILD_CACHE
    env["PATH"] = path
    if spec.resources.gpus:
        visible = ",".join(str(i) for i in range(len(plan.gpu_devices)))
        env["CUDA_VISIBLE_DEVICES"] = visible
        env["NVIDIA_VISIBLE_DEVICES"] = visible
    return {**spec.env, **env}


def argv(plan: ReplicaPlan, *, bwrap: str, setpriv: str, seccomp_fd: int | None = None) -> list[str]:
    """The full command line: setpriv, bwrap with the profile, then the user's command.
    ``seccomp_fd``: an inherited file descriptor holding ``sandbox.seccomp``'s filter."""
    args = identity(plan, setpriv) + [bwrap] + namespaces()
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]  # no ptrace of the sandbox's own processes
    for line in mounts(plan):
        args += line
    args.append("--clearenv")
    for name, value in environment(plan).items():
        args += ["--setenv", name, value]
    return args + ["--", *plan.spec.command]


def passwd_files(uid: int) -> tuple[str, str]:
    passwd = f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:{uid}:{uid}:Podium sandbox:/scratch:/bin/sh\n"
    group = f"root:x:0:\nsandbox:x:{uid}:\n"
    return passwd, group
