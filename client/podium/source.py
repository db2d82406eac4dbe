"""Capturing the Python source a model needs, so that a bundle carries its own code.

Two cases, chosen by where the model's class was defined:

- **in a module file** (``from mymodels import Sentiment``): the bundle carries that file *as is*, at its import
  path (``mymodels.py``, ``pkg/nets.py`` with ``pkg/__init__.py``), plus every local module it imports, directly or
  not (the *local closure*). Relative imports keep working because the server imports the entrypoint by its path
  as a dotted module name, with the bundle root first on ``sys.path``.
- **in ``__main__``** (a notebook, or a script run with ``python train.py``): copying the file would run the
  script's top-level code (the training) on the server, and a notebook has no file. Podium writes a new
  ``model.py`` instead: the class's source, the functions and classes of ``__main__`` it uses (recursively), simple
  constants (numbers, strings, lists and dicts of them), and an import line for every module, function or class
  it uses from elsewhere, rebuilt from the live objects. What cannot be captured that way (a global holding a
  trained object, a name bound with ``exec``) is an error that names it.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import linecache
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.errors import BundleError
from podium.requirements import is_local, module_file


@dataclass
class Captured:
    """Source files to put in a bundle (bundle-relative path -> text) and the top-level modules they import."""

    files: dict[str, str] = field(default_factory=dict)
    imports: set[str] = field(default_factory=set)
    entrypoint: str = ""


def source_of(obj: Any) -> str:
    """The dedented source of a class or function, also for classes defined in a notebook cell.

    ``inspect.getsource`` cannot find a class defined in IPython on Python < 3.13; its methods know their cell
    (``co_filename``), so the class is found in that cell's text.
    """
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        if not inspect.isclass(obj):
            raise BundleError(f"cannot find the source of {obj!r} (defined with exec, or in a deleted cell?)") from None
    for member in vars(obj).values():
        func = getattr(member, "__func__", member)
        code = getattr(func, "__code__", None)
        if code is None:
            continue
        text = "".join(linecache.getlines(code.co_filename))
        if not text:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.name == obj.__name__ and node.lineno <= code.co_firstlineno:
                end = node.end_lineno or node.lineno
                if code.co_firstlineno <= end:
                    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                    return textwrap.dedent("".join(text.splitlines(keepends=True)[start - 1 : end]))
    raise BundleError(f"cannot find the source of class {obj.__qualname__} (defined with exec, or in a deleted cell?)")


# -- module files: the local closure ----------------------------------------------------------------------------


def _module_names_imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names an AST may import: ``import a.b`` -> a.b; ``from .x import y`` -> pkg.x and pkg.x.y."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                except ImportError as exc:
                    raise BundleError(f"{module}: relative import beyond its top-level package") from exc
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _local_file(dotted: str, roots: dict[str, Path]) -> tuple[Path, Path, bool] | None:
    """(file, root, is_package) of a local module, looked up on disk from its top-level package's root."""
    top = dotted.partition(".")[0]
    if top not in roots:
        file = module_file(top)
        if file is None:
            return None
        roots[top] = file.parent.parent if file.name == "__init__.py" else file.parent
    base = roots[top].joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", roots[top], True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), roots[top], False
    return None


def local_closure(modules: list[str]) -> Captured:
    """The files of these local modules and of every local module they import, with their packages' __init__."""
    captured = Captured()
    roots: dict[str, Path] = {}
    queue = list(modules)
    seen: set[str] = set()
    while queue:
        dotted = queue.pop()
        if dotted in seen:
            continue
        seen.add(dotted)
        parts = dotted.split(".")
        queue.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages' __init__.py
        found = _local_file(dotted, roots)
        if found is None:
            continue
        file, root, is_package = found
        rel = file.relative_to(root).as_posix()
        if rel in captured.files:
            continue
        text = file.read_text(encoding="utf-8")
        captured.files[rel] = text
        for name in _module_names_imported(ast.parse(text, filename=str(file)), dotted, is_package):
            top = name.partition(".")[0]
            if is_local(top):
                queue.append(name)
            elif top:
                captured.imports.add(top)
    return captured


def capture_module_class(cls: type) -> Captured:
    """Bundle files for a class defined in a local module file; its entrypoint is that file."""
    module = cls.__module__
    if not is_local(module.partition(".")[0]):
        raise BundleError(
            f"{cls.__module__}.{cls.__qualname__} comes from an installed package, not from your code: "
            "subclass it in your own module (or notebook) and deploy that class"
        )
    captured = local_closure([module])
    found = _local_file(module, {})
    if found is None:
        raise BundleError(f"cannot find the file of module {module}")
    file, root, _ = found
    captured.entrypoint = f"{file.relative_to(root).as_posix()}:{cls.__qualname__}"
    return captured


# -- __main__: rebuild a model.py from live objects ------------------------------------------------------------


def _free_names(tree: ast.AST) -> set[str]:
    """Names a snippet reads but never binds (scope-insensitive: a name bound anywhere counts as bound)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    top = tree.body[0] if isinstance(tree, ast.Module) and tree.body else None
    if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bound.discard(top.name)  # a recursive function or a class using its own name needs no capture
        loaded.discard(top.name)
    return loaded - bound - set(dir(builtins))


def _attribute_chains(tree: ast.AST, name: str) -> set[str]:
    """``np.linalg.norm`` -> {"np.linalg.norm", "np.linalg"} for name "np"."""
    chains: set[str] = set()
    for node in ast.walk(tree):
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == name and parts:
            parts.reverse()
            chains.update(".".join([name, *parts[:i]]) for i in range(1, len(parts) + 1))
    return chains


def _is_literal(value: Any) -> bool:
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


class _Rebuilder:
    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.globals = vars(module)
        self.imports: list[str] = []
        self.definitions: list[str] = []
        self.top_levels: set[str] = set()
        self.done: set[str] = set()

    def add_import(self, line: str, top: str) -> None:
        if line not in self.imports:
            self.imports.append(line)
        self.top_levels.add(top)

    def capture(self, name: str, obj: Any) -> None:
        if name in self.done:
            return
        self.done.add(name)
        source = source_of(obj)
        tree = ast.parse(source)
        for free in sorted(_free_names(tree)):
            self.resolve(free, tree, needed_by=name)
        self.definitions.append(source)

    def resolve(self, name: str, tree: ast.AST, needed_by: str) -> None:
        if name not in self.globals:
            raise BundleError(
                f"{needed_by} uses {name!r}, which is not defined in {self.module.__name__}: "
                "define or import it there before deploying"
            )
        value = self.globals[name]
        if isinstance(value, types.ModuleType):
            self.import_module(name, value, tree)
        elif (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == self.module.__name__:
            self.capture(name, value)
        elif inspect.isclass(value) or callable(value) and hasattr(value, "__module__") and hasattr(value, "__name__"):
            self.import_object(name, value, needed_by)
        elif _is_literal(value):
            if name not in self.done:
                self.done.add(name)
                self.definitions.append(f"{name} = {value!r}\n")
        else:
            raise BundleError(
                f"{needed_by} uses the global {name!r} (a {type(value).__name__}), which cannot be captured as source: "
                "create it in load(), from a file passed with files=[...]"
            )

    def import_module(self, name: str, module: types.ModuleType, tree: ast.AST) -> None:
        real = module.__name__
        top = real.partition(".")[0]
        self.check_importable(top, name)
        self.add_import(f"import {real}" if name == real else f"import {real} as {name}", top)
        if name == top:  # `import os` then `os.path.join`: make sure submodules used as attributes are imported
            for chain in sorted(_attribute_chains(tree, name)):
                if chain in sys.modules and chain != real:
                    self.add_import(f"import {chain}", top)

    def import_object(self, name: str, value: Any, needed_by: str) -> None:
        module_name = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", getattr(value, "__name__", ""))
        if not module_name or "." in qualname or module_name == "__main__":
            raise BundleError(f"{needed_by} uses {name!r} ({value!r}), which cannot be imported by name on the server")
        top = module_name.partition(".")[0]
        self.check_importable(top, name)
        self.add_import(f"from {module_name} import {qualname}" + (f" as {name}" if name != qualname else ""), top)

    def check_importable(self, top: str, name: str) -> None:
        if is_local(top):
            raise BundleError(
                f"{name!r} comes from your local module {top!r}, which a notebook class cannot carry: "
                "deploy a directory with model.py, or define the class in a module file next to it"
            )


def capture_main_class(cls: type, filename: str = "model.py") -> Captured:
    """A new ``model.py`` holding a ``__main__`` class and what it uses; see the module docstring."""
    module = sys.modules.get(cls.__module__)
    if module is None:
        raise BundleError(f"module {cls.__module__} of {cls.__qualname__} is not loaded")
    if "." in cls.__qualname__:
        raise BundleError(f"{cls.__qualname__} is nested in a function or class: define it at top level")
    rebuilder = _Rebuilder(module)
    rebuilder.capture(cls.__name__, cls)
    header = "# Written by podium.deploy() from the definitions in your notebook or script.\n"
    future = [line for line in rebuilder.imports if line.startswith("from __future__")]
    others = [line for line in rebuilder.imports if not line.startswith("from __future__")]
    text = header + "".join(f"{line}\n" for line in future + others) + "\n\n" + "\n\n".join(rebuilder.definitions)
    compile(text, filename, "exec")
    return Captured(files={filename: text}, imports=rebuilder.top_levels, entrypoint=f"{filename}:{cls.__name__}")


def capture_class(cls: type) -> Captured:
    """The source a bundle needs for ``cls``: its module's files, or a rebuilt model.py for ``__main__``."""
    if cls.__module__ == "__main__" or getattr(sys.modules.get(cls.__module__), "__file__", None) is None:
        return capture_main_class(cls)
    return capture_module_class(cls)
