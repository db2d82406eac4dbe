"""Fixtures for the client's tests: build bundles, and load them back in a fresh Python process.

``load_bundle`` proves that a bundle is self-sufficient: it runs a separate interpreter in isolated mode (no
PYTHONPATH, no current directory on sys.path), with the bundle root as working directory and first on sys.path,
and loads the model with ``load_predictor`` of ``sandbox/runtime/model_server.py``, the loader that runs in the
sandbox. It does not import the client or the tests: every module of the model must come from the bundle itself.
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

RUNTIME = Path(__file__).resolve().parents[2] / "sandbox" / "runtime" / "model_server.py"

# Loads the bundle with the model server's own loader, the code that runs in the sandbox, imported from its
# file so that nothing else of Podium is on sys.path.
LOADER = r"""
import importlib.util, json, os, sys

runtime, root, inputs = sys.argv[1], os.path.realpath(sys.argv[2]), json.loads(sys.argv[3])
spec = importlib.util.spec_from_file_location("podium_model_server", runtime)
server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server)
os.chdir(root)
manifest = json.load(open("podium.json"))
predict = server.load_predictor(root)
for name, module in list(sys.modules.items()):
    path = os.path.realpath(getattr(module, "__file__", None) or "/")
    if path.startswith(root) or name.startswith(("podium.", "tests")) or name in ("podium", "pytest"):
        assert path.startswith(root), f"the model imported {name} from {path}"
if manifest["flavor"] == "custom":
    answer = predict(inputs)
    if isinstance(answer, server.Stream):  # a streaming predict(): its chunks, in order
        chunks = []
        while True:
            more, chunk = answer.next()
            if not more:
                break
            chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        answer = {"streamed": chunks}
else:
    answer = predict({"inputs": inputs})["predictions"]
print(json.dumps(answer))
"""


@pytest.fixture
def load_bundle() -> Callable[[Path, Any], Any]:
    def run(root: Path, inputs: Any) -> Any:
        result = subprocess.run(
            [sys.executable, "-I", "-c", LOADER, str(RUNTIME), str(root), json.dumps(inputs)],
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
