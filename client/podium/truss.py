"""Truss's model layout (``config.yaml`` + ``model/model.py`` with a class ``Model``), taken as it is.

Only the keys Podium uses are read: ``model_name``, ``description``, ``requirements``, ``python_version``
(``py311``) and ``resources`` (``cpu``: "1" or "500m", ``memory``: "2Gi" / "512Mi", ``use_gpu``,
``accelerator``: "T4:2"). PyYAML reads the file when it is installed; else a small reader that understands
top-level scalars, lists and one level of nested mapping, which is what Truss writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from podium.errors import BundleError


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "yes"):
        return True
    if text.lower() in ("false", "no"):
        return False
    if text.lower() in ("null", "~", ""):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    return text


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""


def read_simple_yaml(text: str) -> dict[str, Any]:
    """Top-level ``key: value``, ``key:`` followed by ``- item`` lines or indented ``sub: value`` lines,
    and flow lists ``[a, b]``."""
    data: dict[str, Any] = {}
    key: str | None = None
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if not line.strip():
            continue
        indented = line[0] in " \t"
        stripped = line.strip()
        if not indented and not stripped.startswith("- "):
            key, _, value = stripped.partition(":")
            key = key.strip()
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                data[key] = [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
            elif value:
                data[key] = _scalar(value)
            else:
                data[key] = None
            continue
        if key is None:
            continue
        if stripped.startswith("- ") or stripped == "-":
            if not isinstance(data.get(key), list):
                data[key] = []
            data[key].append(_scalar(stripped[1:]))
        elif ":" in stripped:
            if not isinstance(data.get(key), dict):
                data[key] = {}
            sub, _, value = stripped.partition(":")
            data[key][sub.strip()] = _scalar(value)
    return data


def read_config(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        import yaml
    except ImportError:
        return read_simple_yaml(text)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} must hold a mapping")
    return data


def _cpu(value: Any) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _memory_mib(value: Any) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?)?B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise BundleError(f"config.yaml: resources.memory {value!r} is not a size like 2Gi or 512Mi")
    number, unit = float(match.group(1)), (match.group(2) or "").upper().rstrip("I")
    factor = {"": 1 / (1024 * 1024), "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit]
    return max(1, int(number * factor))


def _gpus(resources: dict[str, Any]) -> int | None:
    accelerator = resources.get("accelerator")
    if accelerator:
        _, _, count = str(accelerator).partition(":")
        return int(count) if count.strip().isdigit() else 1
    if resources.get("use_gpu") is not None:
        return 1 if resources["use_gpu"] else 0
    return None


def truss_settings(root: Path) -> dict[str, Any]:
    """Bundle settings for a Truss directory: a custom bundle with entrypoint ``model/model.py:Model``."""
    config = read_config(root / "config.yaml")
    requirements = config.get("requirements") or []
    if not isinstance(requirements, list):
        raise BundleError("config.yaml: requirements must be a list")
    resources = config.get("resources") or {}
    settings: dict[str, Any] = {
        "flavor": "custom",
        "entrypoint": "model/model.py:Model",
        "requirements": [str(r) for r in requirements],
        "resources": {
            k: v for k, v in {
                "cpu": _cpu(resources.get("cpu")), "memory_mib": _memory_mib(resources.get("memory")),
                "gpus": _gpus(resources),
            }.items() if v is not None
        },
        "kind": f"Truss {root.name}/",
    }
    if config.get("model_name"):
        settings["name"] = re.sub(r"[^a-z0-9]+", "-", str(config["model_name"]).lower()).strip("-")
    if config.get("description"):
        settings["description"] = str(config["description"])
    python = str(config.get("python_version") or "")
    if re.fullmatch(r"py3\d+", python):
        settings["python"] = f"3.{python[3:]}"
    return settings
