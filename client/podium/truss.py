"""A Truss directory (``config.yaml`` + ``model/model.py`` with a class ``Model``), deployed as it is.

``config.yaml`` is read here, where the bundle is made (``yaml.safe_load``), and shipped in the manifest as
JSON (``truss.config``), so the sandbox needs no YAML parser and the model's ``config`` argument is the whole
file. What each key becomes:

| key | in Podium |
|---|---|
| ``model_name`` (else the directory's name), ``description``, ``python_version`` | name, description, Python |
| ``requirements`` or ``requirements_file`` | the version's requirements |
| ``environment_variables`` | the model server's environment |
| ``resources`` (``cpu``, ``memory``, ``use_gpu``, ``accelerator``) | CPU, memory, GPUs per replica |
| ``runtime.predict_concurrency`` | calls a replica runs at once |
| ``model_module_dir``, ``model_class_filename``, ``model_class_name`` | the entrypoint |
| ``bundled_packages_dir`` (``packages/``), ``external_package_dirs`` | on ``sys.path`` (external ones copied in) |
| ``data_dir`` (``data/``) | the model's ``data_dir`` argument |
| ``secrets`` | the model's ``secrets`` argument (see ``SECRETS_NOTE``) |
| ``model_metadata``, ``examples_filename``, ``spec_version``, ... | kept in ``config``, nothing else to do |

A key Podium cannot honour here (``build_commands``, ``system_packages``, ``external_data``, ``base_image``,
``docker_server``, ...) gives a warning naming it and what Podium does instead; so does a key it does not
know. An ignored key is never silent.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from podium.errors import BundleError

# Keys that need nothing beyond reaching the model as part of ``config``.
PASSIVE = {"model_metadata", "examples_filename", "spec_version", "input_type", "model_framework", "model_type",
           "live_reload", "apply_library_patches", "description"}
HANDLED = {"model_name", "python_version", "requirements", "requirements_file", "environment_variables",
           "resources", "runtime", "model_module_dir", "model_class_filename", "model_class_name",
           "bundled_packages_dir", "external_package_dirs", "data_dir", "secrets"}
UNSUPPORTED = {
    "build_commands": "Podium does not run build commands; put what they install in requirements or the bundle",
    "system_packages": "Podium installs no system packages; the sandbox has the host's Python and its libraries",
    "external_data": "Podium downloads nothing at build time; put the files in data/",
    "base_image": "Podium runs models in its own sandboxes, not in container images",
    "docker_server": "Podium runs the Model class with its own model server, not a custom server",
    "model_cache": "Podium downloads nothing from a model hub; put the weights in data/",
    "trt_llm": "TensorRT-LLM builds are not available in Podium",
    "build": "Truss build presets (TGI, vLLM) are not available in Podium",
    "training_checkpoints": "training checkpoints are not fetched; put the files in data/",
}
RUNTIME_KEYS = {"predict_concurrency"}
RESERVED_ENV = ("PODIUM_", "NOMAD_", "LD_", "CUDA_VISIBLE", "NVIDIA_VISIBLE")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRETS_NOTE = ("this Podium has no workspace secrets yet: the model's `secrets` argument holds each declared name "
                "with its default from config.yaml")


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} must hold a mapping")
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    """YAML dates and times become ISO text, so the config travels as JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return value


def _cpu(value: Any) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    try:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise BundleError(f"config.yaml: resources.cpu {value!r} is not a number of cores like \"1\" or "
                          "\"500m\"") from None


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


def _requirements(root: Path, config: dict[str, Any]) -> list[str]:
    listed = config.get("requirements") or []
    if not isinstance(listed, list):
        raise BundleError("config.yaml: requirements must be a list")
    file = config.get("requirements_file")
    if not file:
        return [str(r) for r in listed]
    if listed:
        raise BundleError("config.yaml: give requirements or requirements_file, not both")
    path = (root / str(file)).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise BundleError(f"config.yaml: requirements_file {file!r} is not a file inside the Truss")
    if path.suffix != ".txt":
        raise BundleError(f"config.yaml: requirements_file {file!r}: Podium reads requirements.txt files; "
                          "list the requirements in a .txt file")
    lines = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _environment(config: dict[str, Any]) -> dict[str, str]:
    variables = config.get("environment_variables") or {}
    if not isinstance(variables, dict):
        raise BundleError("config.yaml: environment_variables must be a mapping of NAME: value")
    env = {}
    for name, value in variables.items():
        if not ENV_NAME.match(name):
            raise BundleError(f"config.yaml: environment_variables: {name!r} is not a valid variable name")
        if name.upper().startswith(RESERVED_ENV):
            raise BundleError(f"config.yaml: environment_variables: {name} is set by Podium; choose another name")
        env[name] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _concurrency(config: dict[str, Any], warnings: list[str]) -> int | None:
    runtime = config.get("runtime") or {}
    if not isinstance(runtime, dict):
        raise BundleError("config.yaml: runtime must be a mapping")
    for key in sorted(set(runtime) - RUNTIME_KEYS):
        warnings.append(f"config.yaml: runtime.{key} is not used by Podium; ignored")
    value = runtime.get("predict_concurrency")
    if value is None:
        return None
    if not isinstance(value, int) or not 1 <= value <= 64:
        raise BundleError(f"config.yaml: runtime.predict_concurrency {value!r} must be a whole number from 1 to 64")
    return value


def _copy_external(root: Path, dest: Path, config: dict[str, Any]) -> list[str]:
    """``external_package_dirs`` lie outside the Truss: they are copied into the bundle, each under
    ``_external/<n>``, and put on ``sys.path`` like ``packages/``."""
    dirs = config.get("external_package_dirs") or []
    if not isinstance(dirs, list):
        raise BundleError("config.yaml: external_package_dirs must be a list of directories")
    paths = []
    for n, item in enumerate(dirs):
        source = (root / str(item)).resolve()
        if not source.is_dir():
            raise BundleError(f"config.yaml: external_package_dirs: {item!r} is not a directory")
        target = f"_external/{n}"
        shutil.copytree(source, dest / target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        paths.append(target)
    return paths


def truss_settings(root: Path, dest: Path) -> dict[str, Any]:
    """Bundle settings for the Truss at ``root`` (already copied to ``dest``): a custom bundle whose
    entrypoint is the Truss's model class, with the Truss's settings in ``truss`` and ``warnings``."""
    config = read_config(root / "config.yaml")
    warnings: list[str] = []
    for key in sorted(config):
        if key in UNSUPPORTED and config[key] not in (None, [], {}, ""):
            warnings.append(f"config.yaml: {key} is ignored: {UNSUPPORTED[key]}")
        elif key not in HANDLED | PASSIVE | set(UNSUPPORTED):
            warnings.append(f"config.yaml: {key} is not a Truss setting Podium knows; ignored")
    secrets = config.get("secrets") or {}
    if not isinstance(secrets, dict):
        raise BundleError("config.yaml: secrets must be a mapping of name: default")
    if secrets:
        warnings.append(f"config.yaml: secrets ({', '.join(sorted(secrets))}): {SECRETS_NOTE}")
    module_dir = str(config.get("model_module_dir") or "model").strip("/")
    filename = str(config.get("model_class_filename") or "model.py")
    class_name = str(config.get("model_class_name") or "Model")
    packages = str(config.get("bundled_packages_dir") or "packages").strip("/")
    data_dir = str(config.get("data_dir") or "data").strip("/")
    resources = config.get("resources") or {}
    if not isinstance(resources, dict):
        raise BundleError("config.yaml: resources must be a mapping")
    settings: dict[str, Any] = {
        "flavor": "custom",
        "entrypoint": f"{module_dir}/{filename}:{class_name}",
        "requirements": _requirements(root, config),
        "resources": {
            k: v for k, v in {
                "cpu": _cpu(resources.get("cpu")), "memory_mib": _memory_mib(resources.get("memory")),
                "gpus": _gpus(resources),
            }.items() if v is not None
        },
        "env": _environment(config),
        "truss": {
            "config": config,
            "python_path": [p for p in [packages] if (dest / p).is_dir()] + _copy_external(root, dest, config),
            "data_dir": data_dir,
            "secrets": {str(k): v for k, v in secrets.items()},
        },
        "warnings": warnings,
        "kind": f"Truss {root.name}/",
        "name": re.sub(r"[^a-z0-9]+", "-", str(config.get("model_name") or root.name).lower()).strip("-"),
    }
    concurrency = _concurrency(config, warnings)
    if concurrency is not None:
        settings["concurrency"] = concurrency
    if config.get("description"):
        settings["description"] = str(config["description"])
    python = str(config.get("python_version") or "")
    if re.fullmatch(r"py3\d+", python):
        settings["python"] = f"3.{python[3:]}"
    return settings
