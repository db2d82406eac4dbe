"""Environments: uv builds keyed by requirements + Python, cached, built once,
honouring the host's pip index configuration, failing with uv's own error."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest
from sandbox_helpers import run

from sandbox import EnvironmentBuildError, State
from sandbox.environments import (
    EnvironmentBuilder,
    cpu_preferences,
    local_cpu_wheels,
    normalise_requirements,
    read_pip_config,
    uv_index_args,
)
from sandbox.errors import RequirementRefused
from sandbox.executors.local import LocalExecutor
from sandbox.requirements import check_requirements


def make_wheel(directory: Path, name: str, version: str, source: str) -> Path:
    """A minimal pure-Python wheel, so builds need no network."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: podium-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(sandbox_var: Path) -> Path:
    # World-readable: the build sandbox reads it as its own unprivileged uid.
    directory = sandbox_var / "wheels"
    directory.mkdir(mode=0o755, exist_ok=True)
    make_wheel(directory, "podium_demo", "1.0", "ANSWER = 42\n")
    for wheel in directory.iterdir():
        wheel.chmod(0o644)
    return directory


@pytest.fixture(scope="module")
def builder(sandbox_var: Path, wheelhouse: Path, local_executor: LocalExecutor) -> EnvironmentBuilder:
    # Offline: only the wheelhouse. The real host index configuration is
    # exercised by the translation tests below.
    return EnvironmentBuilder(
        root=sandbox_var / "sandbox" / "envs",
        pip_settings={"no-index": "1", "find-links": str(wheelhouse)},
        executor=local_executor,
    )


PIP_CONFIG_LIST = """\
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/srv/overridden'
user.index-url='https://pypi.internal/simple'
"""


def test_it_reads_pip_config_with_env_overriding_files() -> None:
    settings = read_pip_config(environ={"PIP_DEFAULT_TIMEOUT": "180"}, pip_config_list=PIP_CONFIG_LIST)
    assert settings["find-links"] == "/opt/wheels"
    assert settings["index-url"] == "https://pypi.internal/simple"
    assert settings["default-timeout"] == "180"


def test_it_translates_pip_index_settings_into_uv_flags() -> None:
    settings = read_pip_config(environ={"PIP_DEFAULT_TIMEOUT": "180"}, pip_config_list=PIP_CONFIG_LIST)
    args, env = uv_index_args(settings)
    assert args == [
        "--index-url",
        "https://pypi.internal/simple",
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/pypi-more/simple",
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/xdg/pip/constraints.txt",
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "UV_HTTP_TIMEOUT": "180"}


def test_it_prefers_a_local_cpu_build_only_where_the_request_allows_it(tmp_path: Path) -> None:
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    wheels = local_cpu_wheels({"find-links": f"file://{tmp_path}"})
    assert wheels == {"torch": "2.13.0+cpu"}
    assert cpu_preferences("torch>=2.0\nnumpy", wheels) == ["torch==2.13.0+cpu"]
    assert cpu_preferences("Torch==2.13.0", wheels) == ["torch==2.13.0+cpu"]
    assert cpu_preferences("torch>=2.14", wheels) == []


def test_the_key_ignores_order_comments_and_blank_lines(builder: EnvironmentBuilder) -> None:
    assert normalise_requirements("b==1\n# c\n\na==2  # pinned\n") == "a==2\nb==1"
    assert builder.key("a==2\nb==1") == builder.key("b==1\n\na==2 # x")
    assert builder.key("a==2") != builder.key("a==3")
    assert builder.key("a==2", "cpu") != builder.key("a==2", "gpu")


def test_it_builds_an_environment_once_and_then_hits_the_cache(builder: EnvironmentBuilder) -> None:
    lines: list[str] = []
    first = builder.ensure("podium-demo==1.0", on_output=lines.append, tenant="w1")
    assert not first.cached
    assert any("podium-demo==1.0" in line for line in lines), lines  # uv's output streamed live
    again = builder.ensure("podium-demo==1.0", tenant="w2")
    assert again.cached and again.path == first.path
    out = subprocess.run(
        [str(first.python), "-c", "import podium_demo; print(podium_demo.ANSWER)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "42"


def test_concurrent_requests_build_it_once(builder: EnvironmentBuilder) -> None:
    venv_runs: list[str] = []
    results = []

    def build() -> None:
        results.append(
            builder.ensure("podium-demo", tenant="w1",
                           on_output=lambda line: venv_runs.append(line) if " venv " in line else None)
        )

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(venv_runs) == 1
    assert len({env.path for env in results}) == 1
    assert sum(not env.cached for env in results) == 1


def test_a_bad_requirement_fails_with_the_installers_own_error(builder: EnvironmentBuilder) -> None:
    with pytest.raises(EnvironmentBuildError) as failure:
        builder.ensure("podium-no-such-package==9.9", tenant="w1")
    assert "podium-no-such-package" in str(failure.value)
    assert builder.lookup("podium-no-such-package==9.9", tenant="w1") is None
    with pytest.raises(RequirementRefused) as refused:
        builder.ensure("numpy>>>1", tenant="w1")
    assert "line 1 ('numpy>>>1')" in str(refused.value)


def test_a_sandbox_imports_from_its_environment_read_only(
    builder: EnvironmentBuilder, local_executor: LocalExecutor
) -> None:
    env = builder.ensure("podium-demo==1.0", tenant="w1")
    status, out = run(
        local_executor,
        (
            "import podium_demo, sys\n"
            "print(podium_demo.ANSWER, sys.prefix)\n"
            "try:\n    open(podium_demo.__file__, 'a')\n"
            "except OSError as exc:\n    print('read-only', exc.errno)\n"
        ),
        python="/env/bin/python",  # where a sandbox sees its environment (sandbox.spec.ENV_MOUNT)
        environment=str(env.path),
    )
    assert status.state == State.EXITED, status
    answer, denied = out.splitlines()
    assert answer == "42 /env"  # mounted at ENV_MOUNT: no sandbox sees where environments live on the host
    assert denied in (f"read-only {errno.EROFS}", f"read-only {errno.EACCES}")


def test_the_hosts_index_config_resolves_torch_to_the_local_cpu_build(tmp_path: Path) -> None:
    settings = read_pip_config()
    if not local_cpu_wheels(settings):
        pytest.skip("this host has no local +cpu wheels in pip's find-links")
    builder = EnvironmentBuilder(root=tmp_path)
    spec = builder.build_spec(tmp_path / "venv", check_requirements("torch"), "cpu", tmp_path, tmp_path / "cache",
                              scope="shared", bundle=None)
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert spec.purpose == "build" and spec.network == "index"
    assert "cpu-builds.txt" in plan["constraints"]  # named beside the plan (/code locally, the task on Nomad)
    pins = (tmp_path / "cpu-builds.txt").read_text()
    assert pins.startswith("torch==") and "+cpu" in pins
    argv = [builder.uv, "pip", "install", "--python", str(tmp_path / "venv" / "bin" / "python"), "torch",
            *plan["index_args"], "--constraint", str(tmp_path / "cpu-builds.txt"), "--dry-run"]
    subprocess.run([builder.uv, "venv", "-q", "--python", builder.python, str(tmp_path / "venv")], check=True)
    dry = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "torch==" in dry.stderr and "+cpu" in dry.stderr.split("torch==", 1)[1].split()[0]
    assert "nvidia" not in dry.stderr
