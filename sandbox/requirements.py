"""Checking a version's requirement lines before anything installs them.

Installing requirements runs code (an sdist's build backend, a ``git+`` URL's
``setup.py``), so requirement lines are untrusted input. Each line is parsed
with ``packaging`` and sorted into one of:

- **index** requirements: a name, extras, a version specifier and markers
  (``scikit-learn>=1.5; python_version >= "3.10"``). They are resolved from the
  package index the operator configured, nothing else.
- **bundle** requirements: a path inside the bundle being built
  (``./packages/mylib``, ``mylib @ file:packages/mylib``). They are built from
  the tenant's own files, in the build sandbox.
- **url** requirements: ``name @ https://...`` or a VCS URL (``git+https://...``).
  They need the network beyond the package index, so they follow the
  workspace's network setting.

Everything else is refused with a message naming the line: options that read
files or change where packages come from (``-r``, ``-c``, ``-e``,
``--index-url``, ``--find-links``, ``--extra-index-url``, ``--trusted-host``,
...), ``file:`` URLs and paths outside the bundle. Only ``--hash=`` options are
kept: they pin what the index may serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement

from sandbox.errors import RequirementRefused

HASH_OPTION = re.compile(r"^--hash[= ](sha256|sha384|sha512):[0-9a-fA-F]{64,128}$")
VCS_SCHEMES = ("git+", "hg+", "svn+", "bzr+")
# Options a requirements file may carry; none is honoured, each gets its own hint.
OPTION_HINTS = {
    ("-r", "--requirement", "-c", "--constraint"): "list the requirements themselves, one per line",
    ("-e", "--editable"): "install the package by its path inside the bundle instead (without -e)",
    ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index", "--trusted-host",
     "--index", "--default-index"): "packages come from the package index this Podium is configured with",
}


@dataclass(frozen=True)
class CheckedLine:
    number: int  # 1-based, in the text as given
    text: str  # the line as it will be installed (bundle paths relative to the bundle)
    kind: str  # "index", "bundle" or "url"
    bundle_path: str | None = None  # for "bundle": the directory, relative to the bundle root


@dataclass(frozen=True)
class CheckedRequirements:
    lines: list[CheckedLine] = field(default_factory=list)

    @property
    def kinds(self) -> set[str]:
        return {line.kind for line in self.lines}

    @property
    def index_only(self) -> bool:
        """Only index requirements: installing them runs no code of the tenant's choosing when the index
        serves wheels."""
        return self.kinds <= {"index"}

    @property
    def bundle_paths(self) -> list[str]:
        return sorted({line.bundle_path for line in self.lines if line.bundle_path})

    def text(self) -> str:
        return "\n".join(sorted({line.text for line in self.lines}))


def check_requirements(text: str, *, bundle: Path | None = None, allow_urls: bool = False) -> CheckedRequirements:
    """Parse every line of ``text``; raise ``RequirementRefused`` naming the first line that cannot be
    installed safely. ``bundle`` is the bundle's root on this host (bundle paths must exist in it);
    ``allow_urls`` is the workspace's network setting (URL and VCS requirements need it)."""
    checked = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if line:
            checked.append(_check_line(number, line, bundle, allow_urls))
    return CheckedRequirements(checked)


def _strip_comment(raw: str) -> str:
    line = raw.strip()
    if line.startswith("#"):
        return ""
    return re.split(r"\s+#", line, maxsplit=1)[0].strip()


def _check_line(number: int, line: str, bundle: Path | None, allow_urls: bool) -> CheckedLine:
    if line.endswith("\\"):
        raise RequirementRefused(number, line, "line continuations are not supported: put each requirement "
                                 "on one line")
    if line.startswith("-"):
        option = re.split(r"[\s=]", line, maxsplit=1)[0]
        hint = next((h for names, h in OPTION_HINTS.items() if option in names), None)
        raise RequirementRefused(number, line, f"the option {option} is not allowed in requirements"
                                 + (f": {hint}" if hint else ""))
    spec, hashes = _split_hashes(number, line)
    if spec.startswith(VCS_SCHEMES) or re.match(r"^[a-z]+://", spec):
        return _url_line(number, line, spec, hashes, allow_urls)
    if _looks_like_path(spec):
        rel = _bundle_path(number, line, spec, bundle)
        return CheckedLine(number, " ".join([f"./{rel}", *hashes]), "bundle", rel)
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise RequirementRefused(number, line, f"this is not a valid requirement ({first})") from None
    if req.url is None:
        return CheckedLine(number, " ".join([spec, *hashes]), "index")
    url = req.url
    scheme = urlparse(url).scheme.lower()
    if scheme == "file" or (not scheme and not url.startswith(VCS_SCHEMES)):
        rel = _bundle_path(number, line, unquote(urlparse(url).path) if scheme else url, bundle)
        head = str(req).split("@", 1)[0].strip()
        return CheckedLine(number, " ".join([f"{head} @ ./{rel}", *hashes]), "bundle", rel)
    return _url_line(number, line, spec, hashes, allow_urls)


def _url_line(number: int, line: str, spec: str, hashes: list[str], allow_urls: bool) -> CheckedLine:
    url = spec.split("@", 1)[1].strip() if " @ " in spec or spec.split("@", 1)[0].isidentifier() else spec
    scheme = urlparse(url.split("+", 1)[1] if url.startswith(VCS_SCHEMES) else url).scheme.lower()
    if scheme not in ("http", "https", "ssh"):
        raise RequirementRefused(number, line, f"{scheme}: URLs cannot be installed; use https or a package name")
    if not allow_urls:
        raise RequirementRefused(
            number, line,
            "installing from a URL needs outbound network, which this workspace does not allow; use a package "
            "from the index, put the package in the bundle, or ask an admin to allow outbound network "
            "(Settings -> Sandbox network)",
        )
    return CheckedLine(number, " ".join([spec, *hashes]), "url")


def _split_hashes(number: int, line: str) -> tuple[str, list[str]]:
    spec, _, rest = line.partition(" --")
    options = [f"--{part.strip()}" for part in rest.split(" --")] if rest else []
    for option in options:
        if not HASH_OPTION.match(option):
            name = option.split("=", 1)[0].split()[0]
            raise RequirementRefused(number, line, f"the option {name} is not allowed in requirements "
                                     "(only --hash=sha256:... is)")
    return spec.strip(), [o.replace("--hash ", "--hash=") for o in options]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or (("/" in spec or "\\" in spec) and "@" not in spec
                                               and "://" not in spec)


def _bundle_path(number: int, line: str, path: str, bundle: Path | None) -> str:
    """The directory ``path`` names, relative to the bundle root; refused when it leaves the bundle."""
    pure = PurePosixPath(path.replace("\\", "/"))
    outside = (pure.is_absolute() or path.startswith("~") or ".." in pure.parts or not pure.parts
               or pure.parts == (".",))
    if outside:
        raise RequirementRefused(number, line, "local paths must point inside the bundle (e.g. "
                                 "./packages/mylib); this one points elsewhere")
    rel = str(PurePosixPath(*[p for p in pure.parts if p != "."]))
    if bundle is not None:
        target = bundle / rel
        try:
            resolved = target.resolve(strict=True)
        except (OSError, RuntimeError):
            raise RequirementRefused(number, line, f"there is no {rel} in the bundle") from None
        if not resolved.is_relative_to(bundle.resolve()) or not resolved.is_dir():
            raise RequirementRefused(number, line, f"{rel} is not a directory inside the bundle")
    return rel
