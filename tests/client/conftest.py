"""Fixtures for the client's tests: build bundles, and load them back in a fresh Python process.

``load_bundle`` proves that a bundle is self-sufficient: it runs a separate interpreter in isolated mode (no
PYTHONPATH, no current directory on sys.path), with the bundle root as working directory and first on sys.path,
and loads the model with plain joblib / torch / importlib as docs/model-bundles.md describes. It does not import
the client or the tests: every module of the model must come from the bundle itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import podium
import pytest

LOADER = r"""
import importlib, json, os, sys

root, inputs = os.path.realpath(sys.argv[1]), json.loads(sys.argv[2])
os.chdir(root)
sys.path.insert(0, root)
manifest = json.load(open("podium.json"))

def load_class(entrypoint):
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path[: -len(".py")].replace("/", "."))
    assert os.path.realpath(module.__file__).startswith(root), f"{module.__name__} came from {module.__file__}"
    return getattr(module, name)

flavor = manifest["flavor"]
if flavor == "sklearn":
    import joblib, numpy
    answer = joblib.load(manifest["artifact"]).predict(numpy.asarray(inputs)).tolist()
elif flavor in ("torchscript", "torch_state"):
    import torch
    if flavor == "torchscript":
        model = torch.jit.load(manifest["artifact"])
    else:
        from safetensors.torch import load_model
        model = load_class(manifest["entrypoint"])(**manifest["init_kwargs"])
        load_model(model, manifest["artifact"])
    model.eval()
    with torch.no_grad():
        answer = model(torch.tensor(inputs, dtype=torch.float32)).tolist()
else:
    cls = load_class(manifest["entrypoint"])
    model = cls(data_dir=os.path.join(root, "data")) if manifest["entrypoint"] == "model/model.py:Model" else cls()
    model.load()
    answer = model.predict(inputs)
leaked = sorted(m for m in sys.modules if m == "podium" or m.startswith("podium.") or m == "pytest")
assert not leaked, f"the model imported {leaked}"
print(json.dumps(answer))
"""


@pytest.fixture
def load_bundle() -> Callable[[Path, Any], Any]:
    def run(root: Path, inputs: Any) -> Any:
        result = subprocess.run(
            [sys.executable, "-I", "-c", LOADER, str(root), json.dumps(inputs)],
            capture_output=True, text=True, timeout=120, cwd="/",
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run


@pytest.fixture
def build(tmp_path: Path) -> Callable[..., podium.Bundle]:
    counter = iter(range(1000))

    def make(obj: Any, **kwargs: Any) -> podium.Bundle:
        return podium.build(obj, tmp_path / f"bundle-{next(counter)}", **kwargs)

    return make
