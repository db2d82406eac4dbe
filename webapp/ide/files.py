"""The files of a model as the editor sees them, and the bundle made from them.

Everything here treats user code as data: files are checked as paths and text,
Python is only *parsed* (``ast.parse``, which never runs anything), and a bundle
is written as a tar.gz for :func:`webapp.serving.actions.create_version`.

A bundle made from editor files: ``podium.json`` from the files when present,
else ``{"flavor": "custom", "entrypoint": "model.py:Model"}``; its requirements
are the lines of ``requirements.txt`` when that file exists (so editing
requirements.txt is enough), else the manifest's own.
"""

from __future__ import annotations

import ast
import io
import json
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from sandbox.errors import RequirementRefused
from sandbox.requirements import check_requirements
from webapp.serving import bundles
from webapp.workspaces.actions import ActionError

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 200
MAX_PATH = 255
DEFAULT_MANIFEST: dict[str, Any] = {"format": 1, "flavor": "custom", "entrypoint": "model.py:Model"}


_PART = r"[^/\\\x00-\x1f]"
_SEGMENT = rf"(?:[^/\\\x00-\x1f.]{_PART}*|\.[^/\\\x00-\x1f.]{_PART}*|\.\.{_PART}+)"  # any part but '.', '..'
PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
"""What :func:`check_path` takes, as the API schema states it (all but the reserved ``_podium/``)."""


def check_path(path: Any) -> str:
    """A relative POSIX path inside the model: no ``..``, not absolute, no empty parts."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise ActionError(f"File paths are 1 to {MAX_PATH} characters; {str(path)[:40]!r} is not.", field="files")
    if "\\" in path or "\0" in path or any(ord(c) < 32 for c in path):
        raise ActionError(f"{path!r}: use forward slashes and printable characters in file paths.", field="files")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("/"):
        raise ActionError(f"{path!r} is absolute; give paths relative to the model, e.g. 'model.py'.",
                          field="files")
    if any(part in ("..", ".", "") for part in path.split("/")):
        raise ActionError(f"{path!r} must stay inside the model: no '..', '.' or empty parts.", field="files")
    if pure.parts[0] == "_podium":
        raise ActionError("'_podium/' is reserved for Podium's own runtime files.", field="files")
    return path


def check_files(files: Any, read_only: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Validate ``{path: text}``: at most 200 files of at most 1 MiB each, paths inside the model,
    and none of the read-only (binary) paths."""
    if not isinstance(files, dict):
        raise ActionError('"files" must be an object of {"path": "text"}.', field="files")
    if len(files) > MAX_FILES:
        raise ActionError(f"A model holds at most {MAX_FILES} files; this has {len(files)}.", field="files")
    cleaned: dict[str, str] = {}
    for path, content in files.items():
        check_path(path)
        if not isinstance(content, str):
            raise ActionError(f"{path}: file contents are text (a JSON string).", field="files")
        if len(content.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
            raise ActionError(f"{path} is larger than 1 MiB; upload large files as part of a bundle.",
                              field="files")
        if path in read_only:
            raise ActionError(f"{path} is a binary file of the deployed version and is read-only here.",
                              field="files")
        cleaned[path] = content
    dirs = {str(p) for path in cleaned for p in PurePosixPath(path).parents if str(p) != "."}
    clash = sorted(dirs & cleaned.keys())
    if clash:
        raise ActionError(f"{clash[0]!r} is both a file and a folder.", field="files")
    return dict(sorted(cleaned.items()))


def syntax_errors(path: str, content: str) -> list[dict[str, Any]]:
    """Syntax errors of one Python file, found by parsing it (never running it); [] for other files."""
    if not path.endswith(".py"):
        return []
    try:
        ast.parse(content, filename=path)
    except SyntaxError as exc:
        error: dict[str, Any] = {"line": exc.lineno or 1, "column": exc.offset or 1, "message": exc.msg}
        if getattr(exc, "end_lineno", None):
            error["end_line"], error["end_column"] = exc.end_lineno, exc.end_offset
        return [error]
    except (RecursionError, MemoryError, ValueError) as exc:
        return [{"line": 1, "column": 1, "message": f"the file cannot be parsed: {type(exc).__name__}"}]
    return []


def requirement_lines(text: str) -> list[str]:
    """The lines of a requirements.txt, each checked as a deploy checks it (``sandbox.requirements``): no
    installer options, no paths outside the model. URL lines are checked against the workspace's network
    setting when the environment is built."""
    try:
        check_requirements(text, allow_urls=True)
    except RequirementRefused as exc:
        raise ActionError(f"requirements.txt {str(exc)[len('requirements '):]}", field="files") from None
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def manifest_for(files: dict[str, str], binary: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``podium.json`` of a bundle made from editor files, checked like an upload's."""
    manifest = dict(DEFAULT_MANIFEST)
    if "podium.json" in files:
        try:
            manifest = json.loads(files["podium.json"])
        except ValueError as exc:
            raise ActionError(f"podium.json is not valid JSON: {exc}", field="files") from None
        if not isinstance(manifest, dict):
            raise ActionError("podium.json must hold a JSON object.", field="files")
    if "requirements.txt" in files:
        manifest["requirements"] = requirement_lines(files["requirements.txt"])
    else:
        manifest.setdefault("requirements", [])
    try:
        parsed = bundles.Manifest.model_validate(manifest)
        parsed.check_flavor()
    except bundles.BundleError as exc:
        raise ActionError(f"podium.json: {exc}", field="files") from None
    except ValueError as exc:
        raise ActionError(f"podium.json is not valid: {bundles._first_error(exc)}", field="files") from None
    present = set(files) | set(binary)
    for named in filter(None, [parsed.artifact, (parsed.entrypoint or "").split(":")[0] or None]):
        if named not in present:
            raise ActionError(f"podium.json names {named!r}, which is not among the files.", field="files")
    return manifest


def bundle_tar(files: dict[str, str], binaries: dict[str, Path], manifest: dict[str, Any]) -> bytes:
    """A deterministic tar.gz (sorted entries, mtime 0) of the files, the binaries and the manifest."""
    entries: dict[str, bytes] = {path: text.encode() for path, text in files.items()}
    for path, source in binaries.items():
        entries[path] = source.read_bytes()
    entries["podium.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(entries):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(entries[path]), 0o644, 0
            tar.addfile(info, io.BytesIO(entries[path]))
    return buffer.getvalue()


def write_tree(dest: Path, files: dict[str, str], binaries: dict[str, Path], manifest: dict[str, Any]) -> None:
    """Lay the bundle out as plain files under ``dest`` (what a test run's sandbox mounts)."""
    for path, text in files.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for path, source in binaries.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    (dest / "podium.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_bundle_dir(root: Path) -> tuple[dict[str, str], list[str]]:
    """Text files and binary paths of an extracted bundle (``<version>/code/bundle``)."""
    text: dict[str, str] = {}
    binary: list[str] = []
    if not root.is_dir():
        return text, binary
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        if "__pycache__" in relative.split("/"):
            continue
        data = path.read_bytes()
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            decoded = None
        if decoded is None or "\0" in decoded or len(data) > MAX_FILE_BYTES or len(text) >= MAX_FILES:
            binary.append(relative)
        else:
            text[relative] = decoded
    return text, binary
