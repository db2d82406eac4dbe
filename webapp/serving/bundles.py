"""Receiving model bundles: check the upload, read its manifest, store it.

The web process treats a bundle as data: it reads ``podium.json`` as JSON,
checks every tar member's path and type, and extracts the files into the
artifact store. It never imports, unpickles or executes anything in it; that
happens only in the model's sandbox (``sandbox/runtime/model_server.py``).
See docs/model-bundles.md for the format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import IO, Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox.spec import check_env

RUNTIME_DIR = Path(settings.BASE_DIR) / "sandbox" / "runtime"
ENTRYPOINT = re.compile(r"^[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*$")


class BundleError(ValueError):
    """An upload that is not a usable bundle; the message says what to fix."""


def _safe_relative(value: str) -> str:
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or not value:
        raise ValueError(f"{value!r} must be a relative path inside the bundle")
    return value


class ManifestResources(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cpu: float = Field(default=1.0, gt=0, le=64)
    memory_mib: int = Field(default=1024, ge=64, le=256 * 1024)
    gpus: int = Field(default=0, ge=0, le=8)


class TrussManifest(BaseModel):
    """What a Truss's config.yaml asks of the model server (client/podium/truss.py makes it)."""

    model_config = ConfigDict(extra="ignore")
    config: dict[str, Any] = Field(default_factory=dict, description="the whole config.yaml, as JSON")
    python_path: list[str] = Field(default_factory=list, max_length=32, description="bundle dirs on sys.path")
    data_dir: str = "data"
    secrets: dict[str, Any] = Field(default_factory=dict)

    @field_validator("python_path")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [_safe_relative(path) for path in value]

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str) -> str:
        return _safe_relative(value)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: int = 1
    flavor: Literal["sklearn", "torchscript", "torch_state", "custom"]
    entrypoint: str | None = None
    artifact: str | None = None
    description: str = ""
    requirements: list[str] = Field(default_factory=list, max_length=500)
    resources: ManifestResources = ManifestResources()
    replicas: int = Field(default=1, ge=1, le=16)
    concurrency: int = Field(default=1, ge=1, le=64, description="predict() calls a replica runs at once")
    env: dict[str, str] = Field(default_factory=dict, max_length=200, description="the model server's environment")
    truss: TrussManifest | None = None
    warnings: list[str] = Field(default_factory=list, max_length=100, description="what packaging did not honour")

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if len(text) > 32768:
                raise ValueError(f"environment variable {name} is longer than 32 KiB")
        return check_env(value)  # the sandbox's own rule, so an upload never passes what a start refuses

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str | None) -> str | None:
        if value is not None:
            if not ENTRYPOINT.match(value):
                raise ValueError("must look like 'model.py:ClassName'")
            _safe_relative(value.split(":")[0])
        return value

    @field_validator("artifact")
    @classmethod
    def _artifact(cls, value: str | None) -> str | None:
        return _safe_relative(value) if value is not None else None

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, value: list[str]) -> list[str]:
        for line in value:
            if len(line) > 300 or "\n" in line:
                raise ValueError(f"requirement {line[:40]!r} is not one line of at most 300 characters")
        return value

    def check_flavor(self) -> None:
        if self.flavor in ("custom", "torch_state") and not self.entrypoint:
            raise BundleError(f"a {self.flavor} bundle needs an 'entrypoint' such as 'model.py:Model'")
        if self.flavor != "custom" and not self.artifact:
            raise BundleError(f"a {self.flavor} bundle needs an 'artifact' path")


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or ".." in Path(name).parts:
        raise BundleError(f"bundle entry {name!r} points outside the bundle")
    if not (member.isfile() or member.isdir()):
        raise BundleError(f"bundle entry {name!r} is a link or device; bundles hold plain files only")


def store_bundle(upload: IO[bytes], version_dir: Path) -> tuple[Manifest, str, int]:
    """Check a tar.gz upload and lay out ``version_dir`` for the model's sandboxes.

    ``version_dir/bundle.tar.gz`` keeps the upload as it came; ``version_dir/code``
    is what a sandbox mounts read-only at ``/code``: ``bundle/`` (the extracted
    files) and ``_podium/model_server.py``. Returns the manifest, sha256 and size.
    """
    max_bytes = settings.PODIUM_MAX_BUNDLE_MB * 1024 * 1024
    digest = hashlib.sha256()
    dest = version_dir / "code" / "bundle"
    dest.mkdir(parents=True)
    archive = version_dir / "bundle.tar.gz"
    size = 0
    with open(archive, "wb") as out:
        for chunk in iter(lambda: upload.read(1 << 20), b""):
            size += len(chunk)
            if size > max_bytes:
                raise BundleError(f"the bundle is larger than {settings.PODIUM_MAX_BUNDLE_MB} MB")
            digest.update(chunk)
            out.write(chunk)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            total = 0
            for member in members:
                _check_member(member)
                total += member.size
            if total > 4 * max_bytes:
                raise BundleError("the bundle expands to more than four times the upload limit")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"the upload is not a gzip-compressed tar file ({exc})") from None
    manifest = read_manifest(dest)
    (version_dir / "code" / "_podium").mkdir()
    shutil.copy2(RUNTIME_DIR / "model_server.py", version_dir / "code" / "_podium" / "model_server.py")
    _make_world_readable(version_dir / "code")
    return manifest, digest.hexdigest(), size


def read_manifest(bundle: Path) -> Manifest:
    path = bundle / "podium.json"
    if not path.is_file():
        raise BundleError("the bundle has no podium.json at its top level")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text()))
    except ValueError as exc:
        raise BundleError(f"podium.json is not valid: {_first_error(exc)}") from None
    manifest.check_flavor()
    for relative in filter(None, [manifest.artifact, (manifest.entrypoint or "").split(":")[0] or None]):
        if not (bundle / relative).is_file():
            raise BundleError(f"podium.json names {relative!r}, which is not in the bundle")
    return manifest


def _first_error(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    return str(exc)


def _make_world_readable(root: Path) -> None:
    # Sandboxes run as unprivileged uids; they must read (never write) the bundle.
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 - read and search only; nothing is writable
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
