"""Turning a model into a bundle: a directory laid out as docs/model-bundles.md says, then a tar.gz of it.

:func:`build` accepts a scikit-learn estimator or pipeline, a PyTorch ``nn.Module``, a class (or instance) with
``load()`` and ``predict()``, or the path of a directory (``model.py`` + ``requirements.txt``, or Truss's
``config.yaml`` + ``model/model.py``). :func:`make_tarball` packs the directory, byte for byte the same for the
same content. Nothing here talks to the server.
"""

from __future__ import annotations

import ast
import gzip
import inspect
import io
import json
import os
import pickle
import platform
import re
import shutil
import sys
import tarfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from podium._version import __version__
from podium.errors import BundleError
from podium.requirements import distributions_of, framework_requirements, is_local, merge
from podium.source import Captured, capture_class, local_closure

FORMAT = 1
MANIFEST = "podium.json"
#: The default limit on a bundle's compressed size, the server's default (PODIUM_MAX_BUNDLE_MB=512);
#: PODIUM_MAX_BUNDLE_MIB changes it here.
DEFAULT_MAX_BUNDLE_MIB = 512
#: Left out when a directory is copied into a bundle.
IGNORED = (".git", ".hg", ".svn", "__pycache__", "*.pyc", ".venv", "venv", ".ipynb_checkpoints", ".DS_Store",
           "*.egg-info", ".mypy_cache", ".pytest_cache", ".ruff_cache")
FLAVORS = ("sklearn", "torchscript", "torch_state", "custom")


@dataclass
class Bundle:
    """A bundle directory and its manifest (the content of its podium.json)."""

    root: Path
    manifest: dict[str, Any]
    kind: str = ""
    #: what the packaging could not honour, in words (a Truss key Podium ignores, say); also in the manifest
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def flavor(self) -> str:
        return str(self.manifest["flavor"])

    def describe(self) -> str:
        """One line for a person: ``sklearn Pipeline, 4 requirements``."""
        what = self.kind or self.manifest.get("entrypoint") or self.manifest.get("artifact") or ""
        n = len(self.manifest["requirements"])
        return f"{self.flavor} {what}, {n} requirement{'s' if n != 1 else ''}"


# The server's rule for model names (webapp/serving/actions.py NAME_RE), checked before anything is uploaded.
NAME = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"


def slug(text: str) -> str:
    """A model name from free text: ``ChurnModel`` -> ``churnmodel``, ``my model.v2`` -> ``my-model-v2``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def build(
    obj: Any,
    dest: Path,
    *,
    name: str | None = None,
    requirements: Iterable[str] | None = None,
    description: str = "",
    files: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] | None = None,
    cpu: float | None = None,
    memory: int | None = None,
    gpu: int | None = None,
    replicas: int | None = None,
    example_input: Any = None,
    init_kwargs: Mapping[str, Any] | None = None,
) -> Bundle:
    """Write the bundle for ``obj`` into the empty directory ``dest`` and return it.

    ``requirements`` replaces the pinned requirements Podium would work out; ``files`` adds files (a list of
    paths, kept at their relative path, or a mapping of bundle path -> local path). Resources left as None take
    the directory's podium.json values, else 1 CPU, 1024 MiB, no GPU, 1 replica.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BundleError(f"{dest} is not empty")
    settings: dict[str, Any] = {}
    if isinstance(obj, (str, os.PathLike)):
        settings = _directory(Path(obj), dest)
    elif _is_sklearn(obj):
        settings = _sklearn(obj, dest)
    elif _is_torch_module(obj):
        settings = _torch(obj, dest, example_input, init_kwargs)
    elif _has_load_and_predict(obj):
        settings = _custom(obj, dest)
    else:
        raise BundleError(
            f"podium.deploy() does not know how to package a {type(obj).__module__}.{type(obj).__qualname__}: "
            "pass a scikit-learn estimator or pipeline, a torch nn.Module, a class (or instance) with load() and "
            "predict(), or the path of a directory with model.py"
        )
    extra_files = dict(settings.pop("files", {}))
    extra_files.update(_file_map(files, Path.cwd()))
    _copy_files(extra_files, dest)
    return _finish(dest, settings, name=name, requirements=requirements, description=description,
                   resources={"cpu": cpu, "memory_mib": memory, "gpus": gpu}, replicas=replicas)


def _finish(
    dest: Path, settings: dict[str, Any], *, name: str | None, requirements: Iterable[str] | None,
    description: str, resources: dict[str, Any], replicas: int | None,
) -> Bundle:
    given = settings.get("resources") or {}
    defaults = {"cpu": 1.0, "memory_mib": 1024, "gpus": 0}
    merged = {k: v if v is not None else given.get(k, defaults[k]) for k, v in resources.items()}
    model_name = name or settings.get("name")
    if not model_name:
        raise BundleError("deploy() needs a name for this model: deploy(model, name='churn')")
    if not re.fullmatch(NAME, model_name):
        raise BundleError(
            f"model name {model_name!r} is not valid: use lowercase letters, digits and '-' (1-64 characters, "
            f"starting and ending with a letter or digit; e.g. {slug(model_name)[:64].strip('-')!r})"
        )
    reqs = merge(list(requirements) if requirements is not None else settings["requirements"])
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": model_name,
        "description": description or settings.get("description", ""),
        "flavor": settings["flavor"],
        "entrypoint": settings.get("entrypoint"),
        "artifact": settings.get("artifact"),
        "python": settings.get("python") or f"{sys.version_info.major}.{sys.version_info.minor}",
        "requirements": reqs,
        "resources": {
            "cpu": float(merged["cpu"]), "memory_mib": int(merged["memory_mib"]), "gpus": int(merged["gpus"]),
        },
        "replicas": int(replicas if replicas is not None else settings.get("replicas", 1)),
        "created_with": {"client": f"podium {__version__}", "python": platform.python_version()},
    }
    if settings.get("init_kwargs") is not None:
        manifest["init_kwargs"] = settings["init_kwargs"]
    for key in ("concurrency", "env", "truss", "warnings"):
        if settings.get(key):
            manifest[key] = settings[key]
    if settings.get("sample_input") is not None:
        manifest["sample_input"] = settings["sample_input"]
    _validate(dest, manifest)
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (dest / "requirements.txt").write_text("".join(f"{line}\n" for line in reqs))
    return Bundle(dest, manifest, settings.get("kind", ""), list(settings.get("warnings") or []))


def _validate(root: Path, manifest: dict[str, Any]) -> None:
    flavor = manifest["flavor"]
    if flavor not in FLAVORS:
        raise BundleError(f"unknown flavor {flavor!r}: use one of {', '.join(FLAVORS)}")
    if flavor in ("custom", "torch_state"):
        entrypoint = manifest.get("entrypoint")
        if not entrypoint or ":" not in entrypoint:
            raise BundleError(f"a {flavor} bundle needs an entrypoint 'path/to/file.py:ClassName'")
        path, _, cls = entrypoint.partition(":")
        file = root / path
        if not path.endswith(".py") or not file.is_file():
            raise BundleError(f"entrypoint {entrypoint}: {path} is not a Python file of the bundle")
        if not _defines_class(file.read_text(encoding="utf-8"), cls):
            raise BundleError(f"entrypoint {entrypoint}: {path} defines no class {cls}")
    if flavor != "custom":
        artifact = manifest.get("artifact")
        if not artifact or not (root / artifact).is_file():
            raise BundleError(f"a {flavor} bundle needs its artifact file; {artifact!r} is not in the bundle")


def _defines_class(source: str, name: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise BundleError(f"syntax error in the entrypoint's file, line {exc.lineno}: {exc.msg}") from exc
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update(a.asname or a.name for a in node.names)
    return name in bound


# -- files --------------------------------------------------------------------------------------------------------


def _bundle_path(given: str) -> str:
    """Where a file named by the model goes in the bundle: its relative path, or its name if it is outside."""
    path = PurePosixPath(Path(given).as_posix())
    if path.is_absolute() or ".." in path.parts:
        return path.name
    return str(path)


def _file_map(
    files: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] | None, base: Path,
    fallback: Path | None = None,
) -> dict[str, Path]:
    """bundle path -> local path. Relative paths are looked up in ``base``, then in ``fallback``."""
    if not files:
        return {}
    pairs = files.items() if isinstance(files, Mapping) else ((_bundle_path(os.fspath(f)), f) for f in files)
    out: dict[str, Path] = {}
    for target, source in pairs:
        local = Path(source).expanduser()
        if not local.is_absolute():
            candidates = [base / local] + ([fallback / local] if fallback else [])
            local = next((c for c in candidates if c.exists()), candidates[0])
        if not local.exists():
            raise BundleError(
                f"file {os.fspath(source)!r} named by the model does not exist (looked in {local.parent})"
            )
        out[_bundle_path(str(target))] = local
    return out


def _copy_files(files: Mapping[str, Path], dest: Path) -> None:
    for target, source in files.items():
        path = dest / target
        if path.exists() and target in (MANIFEST, "requirements.txt"):
            raise BundleError(f"files: {target} is written by Podium; name your file differently")
        path.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, path, ignore=shutil.ignore_patterns(*IGNORED), dirs_exist_ok=True)
        else:
            shutil.copyfile(source, path)


def _write_sources(captured: Captured, dest: Path) -> None:
    for rel, text in captured.files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# -- scikit-learn -------------------------------------------------------------------------------------------------


def _mro_modules(obj: Any) -> list[str]:
    return [getattr(c, "__module__", "") or "" for c in type(obj).__mro__]


def _is_sklearn(obj: Any) -> bool:
    return not inspect.isclass(obj) and any(m.startswith("sklearn.") for m in _mro_modules(obj))


class _ModuleRecorder(pickle.Pickler):
    """Pickles into nothing, noting the module of every class and function the pickle refers to."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: dict[str, str] = {}

    def persistent_id(self, obj: Any) -> None:
        for thing in (obj, type(obj)) if not inspect.isclass(obj) else (obj,):
            module = getattr(thing, "__module__", None)
            if isinstance(module, str) and (inspect.isclass(thing) or inspect.isroutine(thing)):
                self.modules.setdefault(module, getattr(thing, "__qualname__", repr(thing)))
        return None


def _refuse_main(modules: dict[str, str]) -> None:
    main = sorted(q for m, q in modules.items() if m == "__main__")
    if main:
        raise BundleError(
            f"the model uses {', '.join(main)} from __main__ (your notebook or script); a pickle refers to code by "
            "module and name and cannot carry it: move it into a .py file next to your notebook, import it from "
            "there, refit, and deploy again"
        )


def _pickled_modules(obj: Any) -> dict[str, str]:
    recorder = _ModuleRecorder()
    try:
        recorder.dump(obj)
    except Exception as exc:
        _refuse_main(recorder.modules)
        raise BundleError(f"the model cannot be pickled: {exc}") from exc
    _refuse_main(recorder.modules)
    return recorder.modules


def _sklearn(obj: Any, dest: Path) -> dict[str, Any]:
    import joblib

    modules = _pickled_modules(obj)
    tops = {m.partition(".")[0] for m in modules}
    local = sorted(m for m in modules if is_local(m.partition(".")[0]))
    captured = local_closure(local) if local else Captured()
    _write_sources(captured, dest)
    (dest / "artifacts").mkdir()
    joblib.dump(obj, dest / "artifacts" / "model.joblib")
    requirements = merge(framework_requirements("sklearn"), distributions_of(tops | captured.imports))
    return {"flavor": "sklearn", "artifact": "artifacts/model.joblib", "requirements": requirements,
            "kind": type(obj).__name__}


# -- PyTorch ------------------------------------------------------------------------------------------------------


def _is_torch_module(obj: Any) -> bool:
    if "torch" not in sys.modules or inspect.isclass(obj):
        return False
    import torch

    return isinstance(obj, torch.nn.Module)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _torchscript(model: Any, example_input: Any) -> tuple[Any, list[str]]:
    """The model as TorchScript (scripted, else traced with the example), or None and why not."""
    import torch

    reasons: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.script(model), reasons
        except Exception as exc:
            reasons.append(f"torch.jit.script: {_first_line(exc)}")
        if example_input is not None:
            example = example_input if isinstance(example_input, tuple) else (example_input,)
            try:
                return torch.jit.trace(model, example), reasons
            except Exception as exc:
                reasons.append(f"torch.jit.trace: {_first_line(exc)}")
    return None, reasons


def _torch(model: Any, dest: Path, example_input: Any, init_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    import torch

    (dest / "artifacts").mkdir()
    scripted, reasons = _torchscript(model, example_input)
    kind = type(model).__name__
    if scripted is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, and still loads
            torch.jit.save(scripted, str(dest / "artifacts" / "model.pt"))
        return {"flavor": "torchscript", "artifact": "artifacts/model.pt",
                "requirements": framework_requirements("torchscript"), "kind": kind}
    try:
        from safetensors.torch import save_model
    except ImportError as exc:
        raise BundleError(
            f"{kind} does not compile to TorchScript ({'; '.join(reasons)}), and saving its weights needs "
            "safetensors: pip install safetensors (or pass example_input= so it can be traced)"
        ) from exc
    cls = type(model)
    kwargs = _init_kwargs(model, dict(init_kwargs or {}))
    captured = capture_class(cls)
    _write_sources(captured, dest)
    save_model(model, str(dest / "artifacts" / "weights.safetensors"))
    requirements = merge(framework_requirements("torch_state"), distributions_of(captured.imports))
    return {"flavor": "torch_state", "artifact": "artifacts/weights.safetensors", "entrypoint": captured.entrypoint,
            "init_kwargs": kwargs, "requirements": requirements, "kind": kind}


def _jsonable(value: Any) -> bool:
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def _init_kwargs(model: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model``'s class with the same weight shapes.

    Taken from ``init_kwargs=`` first, else from an attribute of the same name (``self.hidden = hidden``).
    Checked by building the class on the meta device (no memory) and comparing every weight's shape.
    """
    import torch

    cls = type(model)
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in given:
            kwargs[param.name] = given.pop(param.name)
        elif _jsonable(getattr(model, param.name, ...)):
            kwargs[param.name] = getattr(model, param.name)
        elif param.default is param.empty:
            raise BundleError(
                f"{cls.__name__}({param.name}=...) cannot be rebuilt on the server: pass "
                f"init_kwargs={{'{param.name}': ...}} to deploy() (JSON values)"
            )
    kwargs.update(given)
    if not _jsonable(kwargs):
        raise BundleError(f"init_kwargs for {cls.__name__} must be JSON values: {kwargs!r}")
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = cls(**kwargs)
    except Exception as exc:
        raise BundleError(
            f"{cls.__name__}(**{kwargs!r}) fails: {_first_line(exc)}; pass init_kwargs= to deploy()"
        ) from exc
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    if want != got:
        diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))[:3]
        detail = ", ".join(f"{k}: {got.get(k)} instead of {want.get(k)}" for k in diff)
        raise BundleError(
            f"{cls.__name__}(**{kwargs!r}) does not rebuild the same model ({detail}): pass the constructor "
            "arguments with init_kwargs= to deploy()"
        )
    return kwargs


# -- custom classes -------------------------------------------------------------------------------------------------


def _has_load_and_predict(obj: Any) -> bool:
    cls = obj if inspect.isclass(obj) else type(obj)
    return callable(getattr(cls, "load", None)) and callable(getattr(cls, "predict", None))


def _custom(obj: Any, dest: Path) -> dict[str, Any]:
    cls = obj if inspect.isclass(obj) else type(obj)
    required = [
        p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ] if cls.__init__ is not object.__init__ else []
    if required:
        raise BundleError(
            f"{cls.__name__}.__init__ needs {', '.join(required)}, but the model server creates the class with no "
            "arguments: give them defaults, or set them up in load()"
        )
    captured = capture_class(cls)
    _write_sources(captured, dest)
    module_file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    named = getattr(cls, "files", None) or []
    if isinstance(named, (str, os.PathLike)):
        named = [named]
    files = _file_map(named, Path.cwd(), Path(module_file).parent if module_file else None)
    return {"flavor": "custom", "entrypoint": captured.entrypoint, "requirements": distributions_of(captured.imports),
            "files": files, "name": slug(cls.__name__), "kind": cls.__name__}


# -- directories ----------------------------------------------------------------------------------------------------


def _requirements_file(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _scan_directory_imports(root: Path) -> list[str]:
    """Pinned distributions for what the directory's Python files import, less the directory's own modules."""
    own = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    tops: set[str] = set()
    for file in root.rglob("*.py"):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except SyntaxError as exc:
            raise BundleError(f"{file.relative_to(root)}, line {exc.lineno}: {exc.msg}") from exc
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops.update(a.name.partition(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops.add(node.module.partition(".")[0])
    return distributions_of(tops - own)


def _find_model_class(file: Path) -> str:
    tree = ast.parse(file.read_text(encoding="utf-8"))
    found = [
        n.name for n in tree.body if isinstance(n, ast.ClassDef)
        and {"load", "predict"} <= {f.name for f in n.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise BundleError(f"{file.name} has no class with load() and predict() methods")
    raise BundleError(
        f"{file.name} has several classes with load() and predict() ({', '.join(found)}): "
        'name one in podium.json: {"entrypoint": "model.py:ClassName"}'
    )


def _directory(src: Path, dest: Path) -> dict[str, Any]:
    src = src.expanduser().resolve()
    if not src.is_dir():
        raise BundleError(f"{src} is not a directory")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*IGNORED), dirs_exist_ok=True)
    user: dict[str, Any] = {}
    if (src / MANIFEST).is_file():
        try:
            user = json.loads((src / MANIFEST).read_text())
        except ValueError as exc:
            raise BundleError(f"{src / MANIFEST} is not valid JSON: {exc}") from exc
        if not isinstance(user, dict):
            raise BundleError(f"{src / MANIFEST} must hold a JSON object")
    if (src / "config.yaml").is_file():
        from podium.truss import truss_settings

        return {**truss_settings(src, dest), **{k: v for k, v in user.items() if k != "requirements"}}
    settings: dict[str, Any] = {"flavor": user.get("flavor", "custom"), "name": user.get("name") or slug(src.name)}
    for key in ("artifact", "description", "resources", "replicas", "python", "init_kwargs", "sample_input"):
        if key in user:
            settings[key] = user[key]
    if user.get("entrypoint"):
        settings["entrypoint"] = user["entrypoint"]
    elif settings["flavor"] in ("custom", "torch_state"):
        if not (src / "model.py").is_file():
            raise BundleError(f"{src} has no model.py (or podium.json naming an entrypoint)")
        settings["entrypoint"] = f"model.py:{_find_model_class(src / 'model.py')}"
    if "requirements" in user:
        settings["requirements"] = list(user["requirements"])
    elif (src / "requirements.txt").is_file():
        settings["requirements"] = _requirements_file(src / "requirements.txt")
    else:
        settings["requirements"] = _scan_directory_imports(src)
    settings["kind"] = f"directory {src.name}/"
    return settings


# -- the tarball ----------------------------------------------------------------------------------------------------


def max_bundle_bytes() -> int:
    raw = os.environ.get("PODIUM_MAX_BUNDLE_MIB", "").strip()
    try:
        mib = float(raw) if raw else DEFAULT_MAX_BUNDLE_MIB
    except ValueError:
        raise BundleError(f"PODIUM_MAX_BUNDLE_MIB={raw!r} is not a number") from None
    return int(mib * 1024 * 1024)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def make_tarball(root: Path, out: Path, *, max_bytes: int | None = None) -> int:
    """Pack ``root`` into ``out`` (gzip tar, paths relative to the root) and return its size in bytes.

    Deterministic: entries sorted by path, times, owners and permission bits normalised, no name or time in the
    gzip header; the same directory content always gives the same bytes (and so the same sha256).
    """
    limit = max_bytes if max_bytes is not None else max_bundle_bytes()
    paths = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            if path.is_symlink():
                raise BundleError(f"{path.relative_to(root)} is a symbolic link; bundles hold plain files only")
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    size = out.stat().st_size
    if size > limit:
        largest = sorted((p for p in paths if p.is_file()), key=lambda p: p.stat().st_size, reverse=True)[:5]
        listing = ", ".join(f"{p.relative_to(root)} ({_size(p.stat().st_size)})" for p in largest)
        raise BundleError(
            f"the bundle is {_size(size)} compressed, over the {_size(limit)} limit (largest files: {listing}); "
            "leave large data out of the bundle, or raise PODIUM_MAX_BUNDLE_MIB if your server accepts more"
        )
    return size
