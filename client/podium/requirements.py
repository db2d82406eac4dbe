"""Pinning requirements at the versions installed here, and telling local code from installed packages.

Terms:
- a *distribution* is an installed package as pip knows it (``scikit-learn``), found with importlib.metadata;
- a *local module* is Python code imported from a file that is neither in the standard library nor in a
  site-packages directory (your ``utils.py``, a project package you run from its checkout, even when it is
  installed with ``pip install -e``): bundles carry local modules as files, and pin distributions.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import importlib.util
import re
import site
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from podium.errors import RequirementError

#: What each flavor needs on the server besides what the model's own code imports.
FRAMEWORK_PACKAGES: dict[str, list[str]] = {
    "sklearn": ["scikit-learn", "numpy", "scipy", "joblib"],
    "torchscript": ["torch", "numpy"],
    "torch_state": ["torch", "numpy", "safetensors"],
    "custom": [],
}


def canonical(name: str) -> str:
    """PEP 503 normalised project name: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pin(distribution: str) -> str:
    """``name==version`` for an installed distribution, without a local version label.

    ``torch 2.13.0+cpu`` pins as ``torch==2.13.0``: PEP 440 lets ``==2.13.0`` match any local build of that
    release, so the server may install its own CPU or CUDA build.
    """
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError as exc:
        raise RequirementError(
            f"{distribution} is not installed in this Python ({sys.executable}), so its version cannot be pinned: "
            f"install it here, or pass requirements=[...] to deploy()"
        ) from exc
    version = dist.version.split("+", 1)[0]
    return f"{dist.metadata['Name'] or distribution}=={version}"


def merge(*groups: Iterable[str]) -> list[str]:
    """Requirement lines without duplicates (by project name), first one wins, order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for group in groups:
        for line in group:
            key = canonical(re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0])
            if key and key not in seen:
                seen.add(key)
                out.append(line.strip())
    return out


def framework_requirements(flavor: str) -> list[str]:
    return [pin(d) for d in FRAMEWORK_PACKAGES[flavor]]


@functools.cache
def _installed_dirs() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    return tuple(str(Path(p).resolve()) for p in paths if p)


@functools.cache
def _top_level_distributions() -> dict[str, list[str]]:
    return dict(md.packages_distributions())


def module_file(name: str) -> Path | None:
    """The file a module is (or would be) imported from, without importing it when it is not loaded yet."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else None
    if file is None and module is None:
        try:
            spec = importlib.util.find_spec(name) if "." not in name else None
        except (ImportError, ValueError):
            spec = None
        file = spec.origin if spec is not None and spec.has_location else None
    return Path(file).resolve() if file else None


def is_stdlib(top: str) -> bool:
    return top in sys.stdlib_module_names or top in sys.builtin_module_names


def is_local(top: str) -> bool:
    """A top-level module whose code lives outside the standard library and site-packages."""
    if is_stdlib(top) or top == "__main__":
        return False
    file = module_file(top)
    if file is None:
        return False
    return not str(file).startswith(_installed_dirs())


def distributions_of(top_level_modules: Iterable[str]) -> list[str]:
    """Pinned requirements for the installed distributions that provide these top-level modules.

    Modules that are standard library, local, or not installed here (an optional import in a ``try``) add
    nothing. The client itself is never a requirement of a model.
    """
    mapping = _top_level_distributions()
    pins: list[str] = []
    for top in sorted(set(top_level_modules)):
        if top in ("podium", "__main__") or is_stdlib(top) or is_local(top):
            continue
        for dist in mapping.get(top, []):
            pins.append(pin(dist))
    return merge(pins)
