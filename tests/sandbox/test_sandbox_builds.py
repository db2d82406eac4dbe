"""Building an environment is running the tenant's code: it happens in a build sandbox.

A package in the bundle with an in-tree build backend stands for any sdist or ``git+`` URL: its backend
runs at install time. These tests give it the platform to reach (PostgreSQL, Redis, a web port, the secret
key file, the environment of the process that started the build, other environments) and check that it
reached none of it, that its own error is what the user sees, and that what it builds is handed to no
other tenant.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_sandbox_environments import make_wheel

from sandbox.environments import EnvironmentBuilder
from sandbox.errors import EnvironmentBuildError, RequirementRefused
from sandbox.executors.local import LocalExecutor
from sandbox.index_proxy import IndexProxy, allowed_hosts
from sandbox.requirements import check_requirements

PYPROJECT = """\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "{name}"
version = "1.0"
"""

# A PEP 517 backend that builds a one-module wheel by hand, so the test needs no setuptools from an index.
HONEST_BACKEND = '''
import base64, hashlib, os, zipfile

def _wheel(directory, name, source):
    dist = f"{name}-1.0.dist-info"
    files = {f"{name}/__init__.py": source,
             f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: 1.0\\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    target = os.path.join(directory, f"{name}-1.0-py3-none-any.whl")
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
    return os.path.basename(target)

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, NAME, SOURCE)
'''

# The same backend, but its build first tries everything a build must not reach, then fails with a report.
PROBING_BACKEND = '''
import json, os, socket

def _tcp(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__

def _through_proxy(port):
    proxy = os.environ.get("HTTPS_PROXY", "")
    if not proxy:
        return "no proxy"
    host, _, proxy_port = proxy.rsplit("/", 1)[-1].partition(":")
    with socket.create_connection((host, int(proxy_port)), timeout=5) as conn:
        conn.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\n\\r\\n".encode())
        return conn.recv(200).decode(errors="replace").split("\\r\\n")[0]

def _read(path):
    try:
        with open(path) as handle:
            return "read: " + handle.read(40)
    except OSError as exc:
        return type(exc).__name__

def _write(path):
    try:
        with open(path, "w") as handle:
            handle.write("written by a build")
        return "written"
    except OSError as exc:
        return type(exc).__name__

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = {
        "uid": os.getuid(),
        "env": sorted(k for k in os.environ if k.startswith(("DATABASE", "REDIS", "PODIUM_SECRET", "PODIUM_TEST"))),
        "tcp": {name: _tcp(port) for name, port in PORTS.items()},
        "proxy": {name: _through_proxy(port) for name, port in PORTS.items()},
        "read": {path: _read(path) for path in READ},
        "write": [_write(path) for path in WRITE],
    }
    raise SystemExit("PROBE " + json.dumps(report))
'''


def write_package(bundle: Path, name: str, backend: str) -> Path:
    package = bundle / "packages" / name
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text(PYPROJECT.format(name=name))
    (package / "backend.py").write_text(backend)
    for path in [bundle, *bundle.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return package


@pytest.fixture
def bundle(sandbox_var: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = sandbox_var / f"bundle-{os.urandom(4).hex()}"
    path.mkdir(mode=0o755)
    return path


@pytest.fixture(scope="module")
def builder(sandbox_var: Path, local_executor: LocalExecutor) -> EnvironmentBuilder:
    wheels = sandbox_var / "build-wheels"
    wheels.mkdir(mode=0o755, exist_ok=True)
    make_wheel(wheels, "podium_shared", "1.0", "VALUE = 'shared'\n")
    for wheel in wheels.iterdir():
        wheel.chmod(0o644)
    return EnvironmentBuilder(root=sandbox_var / "sandbox" / "envs",
                              pip_settings={"no-index": "1", "find-links": str(wheels)}, executor=local_executor)


def test_a_package_in_the_bundle_is_built_in_the_sandbox_and_kept_for_that_tenant_only(
    builder: EnvironmentBuilder, bundle: Path
) -> None:
    backend = f"NAME = 'hello'\nSOURCE = 'GREETING = \"hi\"\\n'\n{HONEST_BACKEND}"
    write_package(bundle, "hello", backend)
    lines: list[str] = []
    env = builder.ensure("./packages/hello", tenant="w1", bundle=bundle, on_output=lines.append)
    assert not env.cached
    assert any("hello" in line for line in lines), lines
    assert (env.path / "lib" / "python3.11" / "site-packages" / "hello" / "__init__.py").is_file()
    # The same requirement in another workspace is another build: it ran the first tenant's code.
    assert builder.lookup("./packages/hello", tenant="w2", bundle=bundle) is None
    assert builder.lookup("./packages/hello", tenant="w1", bundle=bundle) == env.__class__(**{**env.__dict__,
                                                                                            "cached": True})
    # Another version of the package in the bundle is another environment.
    (bundle / "packages" / "hello" / "backend.py").write_text(backend.replace("hi", "hello"))
    assert builder.lookup("./packages/hello", tenant="w1", bundle=bundle) is None


def test_wheels_from_the_index_build_once_for_every_workspace(builder: EnvironmentBuilder) -> None:
    first = builder.ensure("podium-shared==1.0", tenant="w1")
    second = builder.ensure("podium-shared==1.0", tenant="w2")
    assert second.cached and second.path == first.path


def test_a_built_environment_is_sealed_read_only(builder: EnvironmentBuilder) -> None:
    env = builder.ensure("podium-shared==1.0", tenant="w1")
    for path in [env.path, *env.path.rglob("*")]:
        info = path.lstat()
        assert info.st_uid == 0, path
        if not stat.S_ISLNK(info.st_mode):
            assert info.st_mode & 0o222 == 0, (path, oct(info.st_mode))


def _listening_port() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_a_build_reaches_nothing_of_the_platform_and_its_own_error_is_shown(
    builder: EnvironmentBuilder, bundle: Path, sandbox_var: Path
) -> None:
    web = _listening_port()
    ports = {"web": web.getsockname()[1]}
    for name, variable in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL")):
        url = os.environ.get(variable)
        if url:
            ports[name] = urlparse(url).port or 0
    secret = sandbox_var / "secret_key"
    secret.write_text("host-secret-key")
    secret.chmod(0o600)
    other_env = builder.ensure("podium-shared==1.0", tenant="w2").path
    reads = [str(secret), "/etc/shadow", str(Path(os.environ.get("PODIUM_VAR_DIR", "var")) / "secret_key")]
    writes = [str(sandbox_var / "written-by-a-build"), str(other_env / "planted.py"), str(builder.root / "x"),
              "/code/x", "/usr/lib/x", "/artifacts/x"]
    probe = f"PORTS = {ports!r}\nREAD = {reads!r}\nWRITE = {writes!r}\n{PROBING_BACKEND}"
    write_package(bundle, "probe", probe)
    try:
        with pytest.raises(EnvironmentBuildError) as failure:
            builder.ensure("./packages/probe", tenant="w3", bundle=bundle)
    finally:
        web.close()
    output = failure.value.output
    assert "PROBE " in output, output
    report = json.loads(output.split("PROBE ", 1)[1].splitlines()[0])
    assert report["uid"] != 0
    assert report["env"] == []
    assert all(result != "connected" for result in report["tcp"].values()), report
    assert all(" 403 " in result for result in report["proxy"].values()), report
    assert all(not result.startswith("read") for result in report["read"].values()), report
    # The suite's var dir is under /tmp, which inside a sandbox is the sandbox's own tmpfs: a write there
    # lands in the sandbox and is wiped with it. What counts is that nothing appears on the host.
    written = [path for path, result in zip(writes, report["write"], strict=True) if result == "written"]
    assert all(path.startswith("/tmp/") for path in written), report["write"]
    assert not (sandbox_var / "written-by-a-build").exists()
    assert not (other_env / "planted.py").exists()
    assert not (builder.root / "x").exists()
    assert "PROBE" in str(failure.value)  # the user's own error leads the message


def test_requirement_lines_that_read_host_files_are_refused_before_any_build(
    builder: EnvironmentBuilder, bundle: Path, sandbox_var: Path
) -> None:
    root_only = sandbox_var / "root-only"
    root_only.write_text("first line of a root-only file\n")
    root_only.chmod(0o600)
    earlier = sandbox_var / "earlier-version" / "pkg"
    earlier.mkdir(parents=True)
    for text in (f"-r {root_only}", f"-c {root_only}", f"pkg @ file://{earlier}", str(earlier),
                 "--index-url http://127.0.0.1:5432/simple", "--extra-index-url=http://x", "-e ./packages/x",
                 "--find-links /opt", "--trusted-host example.org", "../outside"):
        with pytest.raises(RequirementRefused) as refused:
            builder.ensure(f"podium-shared==1.0\n{text}", tenant="w1", bundle=bundle)
        message = str(refused.value)
        assert f"line 2 ({text!r})" in message
        assert "first line of a root-only file" not in message


def test_urls_follow_the_workspace_network_setting() -> None:
    with pytest.raises(RequirementRefused, match="outbound network"):
        check_requirements("pkg @ git+https://example.org/pkg.git")
    assert check_requirements("pkg @ git+https://example.org/pkg.git", allow_urls=True).kinds == {"url"}


async def test_the_index_proxy_opens_only_the_index(tmp_path: Path) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"index says hello")
        await writer.drain()
        writer.close()

    index = await asyncio.start_server(echo, "127.0.0.1", 0)
    other = await asyncio.start_server(echo, "127.0.0.1", 0)
    index_port, other_port = index.sockets[0].getsockname()[1], other.sockets[0].getsockname()[1]
    notes: list[str] = []
    proxy = IndexProxy(allowed_hosts({"index-url": f"http://127.0.0.1:{index_port}/simple"}), notes.append)
    path = str(tmp_path / "proxy.sock")
    await proxy.start(path, os.getuid())

    async def connect(port: int) -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return data

    allowed = await connect(index_port)
    refused = await connect(other_port)
    proxy.close()
    index.close()
    other.close()
    assert allowed.startswith(b"HTTP/1.1 200") and allowed.endswith(b"index says hello")
    assert refused.startswith(b"HTTP/1.1 403")
    assert notes == [f"podium: the build tried to reach 127.0.0.1:{other_port}, which is not the package index; "
                     "refused"]


def test_the_default_index_allows_pypi_and_its_file_host_only() -> None:
    assert allowed_hosts({}) == {"pypi.org:443", "files.pythonhosted.org:443"}
    assert allowed_hosts({"no-index": "1", "find-links": "/opt/wheels"}) == set()
    assert allowed_hosts({"index-url": "https://pypi.internal/simple"}, "mirror.internal:8443") == {
        "pypi.internal:443", "mirror.internal:8443"}


def test_a_builds_requirements_text_names_bundle_paths_relative_to_the_bundle() -> None:
    checked = check_requirements(textwrap.dedent("""\
        mylib @ file:packages/mylib
        ./packages/other  # local
        numpy>=1.26
        """))
    assert checked.text() == "./packages/other\nmylib @ ./packages/mylib\nnumpy>=1.26"
    assert checked.bundle_paths == ["packages/mylib", "packages/other"]
