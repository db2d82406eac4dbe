"""Packaging real objects into bundles, and loading each bundle back in a fresh interpreter."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import tarfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import podium
import pytest
import torch
from podium.bundle import make_tarball
from podium.errors import BundleError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from .sample_custom import NeedsArguments, Sentiment
from .sample_features import add_square_of_first
from .sample_torch import BranchNet, TinyNet, Unrebuildable

HERE = Path(__file__).parent


def version_of(dist: str) -> str:
    return md.version(dist).split("+")[0]


def manifest(bundle: podium.Bundle) -> dict:
    return json.loads((bundle.root / "podium.json").read_text())


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)


# -- scikit-learn -----------------------------------------------------------------------------------------------


def test_it_packages_a_sklearn_pipeline_that_loads_with_joblib_alone(build, load_bundle, xy):
    x, y = xy
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    bundle = build(model, name="churn", description="tiny")
    m = manifest(bundle)
    assert (m["flavor"], m["artifact"], m["entrypoint"]) == ("sklearn", "artifacts/model.joblib", None)
    assert (m["name"], m["description"]) == ("churn", "tiny")
    assert m["requirements"][:4] == [f"scikit-learn=={version_of('scikit-learn')}", f"numpy=={version_of('numpy')}",
                                     f"scipy=={version_of('scipy')}", f"joblib=={version_of('joblib')}"]
    assert (bundle.root / "requirements.txt").read_text().splitlines() == m["requirements"]
    assert m["resources"] == {"cpu": 1.0, "memory_mib": 1024, "gpus": 0} and m["replicas"] == 1
    assert m["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert load_bundle(bundle.root, x[:7].tolist()) == model.predict(x[:7]).tolist()


def test_it_carries_the_users_own_module_that_a_pipeline_refers_to(build, load_bundle, xy):
    x, y = xy
    model = make_pipeline(FunctionTransformer(add_square_of_first), LogisticRegression()).fit(x, y)
    bundle = build(model, name="churn")
    assert (bundle.root / "tests/client/sample_features.py").is_file()
    assert (bundle.root / "tests/client/__init__.py").is_file() and (bundle.root / "tests/__init__.py").is_file()
    assert not (bundle.root / "tests/client/test_bundle.py").exists()
    assert load_bundle(bundle.root, x[:5].tolist()) == model.predict(x[:5]).tolist()


def test_it_refuses_a_pipeline_that_refers_to_main(build, xy, monkeypatch):
    x, y = xy
    cell = {"__name__": "__main__"}
    exec("def double(x):\n    return x * 2\n", cell)  # noqa: S102 - a function "from a notebook"
    monkeypatch.setattr(sys.modules["__main__"], "double", cell["double"], raising=False)
    model = make_pipeline(FunctionTransformer(cell["double"]), LogisticRegression()).fit(x, y)
    with pytest.raises(BundleError, match=r"double from __main__.*move it into a \.py file"):
        build(model, name="churn")


# -- PyTorch ------------------------------------------------------------------------------------------------------


def test_it_scripts_a_torch_module_that_compiles(build, load_bundle):
    torch.manual_seed(0)
    model = TinyNet().eval()
    bundle = build(model, name="tiny")
    m = manifest(bundle)
    assert (m["flavor"], m["artifact"]) == ("torchscript", "artifacts/model.pt")
    assert m["requirements"] == [f"torch=={version_of('torch')}", f"numpy=={version_of('numpy')}"]
    assert "+" not in m["requirements"][0]
    x = torch.randn(3, 4)
    assert np.allclose(load_bundle(bundle.root, x.tolist()), model(x).detach().numpy(), atol=1e-6)


def test_it_falls_back_to_safetensors_and_the_class_source(build, load_bundle):
    torch.manual_seed(0)
    model = BranchNet(hidden=5, branches=3).eval()
    bundle = build(model, name="branchy")
    m = manifest(bundle)
    assert (m["flavor"], m["artifact"]) == ("torch_state", "artifacts/weights.safetensors")
    assert m["entrypoint"] == "tests/client/sample_torch.py:BranchNet"
    assert m["init_kwargs"] == {"hidden": 5, "branches": 3}
    assert f"safetensors=={version_of('safetensors')}" in m["requirements"]
    x = torch.randn(3, 4)
    with torch.no_grad():
        want = model(x).numpy()
    assert np.allclose(load_bundle(bundle.root, x.tolist()), want, atol=1e-6)


def test_it_traces_a_module_that_does_not_script_when_given_an_example(build):
    bundle = build(BranchNet(hidden=5).eval(), name="branchy", example_input=torch.zeros(1, 4))
    assert manifest(bundle)["flavor"] == "torchscript"


def test_it_asks_for_init_kwargs_it_cannot_find(build):
    with pytest.raises(BundleError, match=r"Unrebuildable\(width=\.\.\.\).*init_kwargs=\{'width'"):
        build(Unrebuildable(width=3), name="x")
    bundle = build(Unrebuildable(width=3), name="x", init_kwargs={"width": 3})
    assert manifest(bundle)["init_kwargs"] == {"width": 3}


def test_it_catches_init_kwargs_that_build_other_shapes(build):
    with pytest.raises(BundleError, match=r"does not rebuild the same model \(layer.bias: \(2,\) instead of \(3,\)"):
        build(Unrebuildable(width=3), name="x", init_kwargs={"width": 2})


# -- custom classes -------------------------------------------------------------------------------------------------


def test_it_packages_a_custom_class_with_its_module_helpers_and_files(build, load_bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files = ["data/vocab.txt"] is found next to the class's module
    bundle = build(Sentiment)
    m = manifest(bundle)
    assert (m["flavor"], m["name"], m["artifact"]) == ("custom", "sentiment", None)
    assert m["entrypoint"] == "tests/client/sample_custom.py:Sentiment"
    assert (bundle.root / "tests/client/sample_helpers.py").is_file()
    assert (bundle.root / "data/vocab.txt").read_text() == (HERE / "data/vocab.txt").read_text()
    assert m["requirements"] == [f"numpy=={version_of('numpy')}"]  # not pytest, not the client
    body = {"text": "A good, great day"}
    monkeypatch.chdir(HERE)
    original = Sentiment()
    original.load()
    assert load_bundle(bundle.root, body) == original.predict(body) == {"positive": True, "hits": 2}


def test_it_accepts_an_instance_and_explicit_requirements_and_files(build, tmp_path, monkeypatch):
    (tmp_path / "extra.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    bundle = build(Sentiment(), name="senti", requirements=["numpy>=1"], files=["extra.json"], gpu=1, memory=2048)
    m = manifest(bundle)
    assert m["requirements"] == ["numpy>=1"]
    assert m["resources"] == {"cpu": 1.0, "memory_mib": 2048, "gpus": 1}
    assert (bundle.root / "extra.json").is_file()


def test_it_refuses_a_class_whose_constructor_needs_arguments(build):
    with pytest.raises(BundleError, match="needs threshold, but the model server creates the class with no arguments"):
        build(NeedsArguments, name="x")


def test_it_refuses_what_it_cannot_package(build):
    with pytest.raises(BundleError, match="does not know how to package a builtins.dict"):
        build({"a": 1}, name="x")


SCRIPT = '''
import sys
import numpy as np
from collections import Counter
import podium

SCALE = 3
WORDS = ["good", "great"]

def score(text):
    return sum(Counter(text.split())[w] for w in WORDS) * SCALE

class Base:
    def predict(self, body):
        return {"score": score(body["text"]), "mean": float(np.mean(self.weights))}

class Scorer(Base):
    def load(self):
        self.weights = np.arange(4)

print("TRAINING at import time: this must not run on the server")
podium.build(Scorer, __import__("pathlib").Path(sys.argv[1]), name="scorer")
'''

NOTEBOOK = '''
import linecache, sys
from pathlib import Path
import podium
import torch
from torch import nn

cell = """
class Doubler(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.width = width
        self.lin = nn.Linear(2, width)

    def forward(self, x):
        return sum(y for y in [self.lin(x)]) * 2
"""
name = "<ipython-input-7-0123456789ab>"
linecache.cache[name] = (len(cell), None, cell.splitlines(keepends=True), name)
exec(compile(cell, name, "exec"), globals())
torch.manual_seed(0)
model = Doubler(width=4).eval()
podium.build(model, Path(sys.argv[1]), name="doubler")
print(model(torch.ones(1, 2)).tolist())
'''


def test_it_rebuilds_model_py_for_a_class_defined_in_a_script(tmp_path, load_bundle):
    (tmp_path / "train.py").write_text(SCRIPT)
    subprocess.run([sys.executable, "train.py", "bundle"], cwd=tmp_path, check=True, capture_output=True)
    root = tmp_path / "bundle"
    m = json.loads((root / "podium.json").read_text())
    assert m["entrypoint"] == "model.py:Scorer"
    source = (root / "model.py").read_text()
    assert "TRAINING" not in source and "import podium" not in source
    assert "import numpy as np" in source and "from collections import Counter" in source
    assert "SCALE = 3" in source and "def score(text)" in source and "class Base" in source
    assert m["requirements"] == [f"numpy=={version_of('numpy')}"]
    assert load_bundle(root, {"text": "good good great bad"}) == {"score": 9, "mean": 1.5}


def test_it_finds_the_source_of_a_class_defined_in_a_notebook_cell(tmp_path, load_bundle):
    (tmp_path / "nb.py").write_text(NOTEBOOK)
    done = subprocess.run([sys.executable, "nb.py", "bundle"], cwd=tmp_path, check=True, capture_output=True, text=True)
    root = tmp_path / "bundle"
    m = json.loads((root / "podium.json").read_text())
    assert (m["flavor"], m["entrypoint"], m["init_kwargs"]) == ("torch_state", "model.py:Doubler", {"width": 4})
    assert "import torch.nn as nn" in (root / "model.py").read_text()
    assert np.allclose(load_bundle(root, [[1.0, 1.0]]), json.loads(done.stdout.strip().splitlines()[-1]), atol=1e-6)


# -- directories ----------------------------------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


MODEL_PY = textwrap.dedent("""
    import json

    class Echo:
        def load(self):
            self.prefix = json.load(open("settings.json"))["prefix"]

        def predict(self, body):
            return {"echo": self.prefix + body["text"]}
""")


def test_it_packages_a_directory_with_model_py(build, load_bundle, tmp_path):
    src = write(tmp_path / "echo", {
        "model.py": MODEL_PY, "requirements.txt": "# pinned\nrequests==2.32.3\n", "settings.json": '{"prefix": "> "}',
        "__pycache__/model.cpython-311.pyc": "junk",
    })
    bundle = build(src)
    m = manifest(bundle)
    assert (m["name"], m["flavor"], m["entrypoint"], m["requirements"]) == (
        "echo", "custom", "model.py:Echo", ["requests==2.32.3"])
    assert not (bundle.root / "__pycache__").exists()
    assert load_bundle(bundle.root, {"text": "hi"}) == {"echo": "> hi"}


def test_a_directorys_podium_json_names_the_entrypoint_and_resources(build, tmp_path):
    src = write(tmp_path / "two", {
        "model.py": MODEL_PY + "\nclass Other(Echo):\n    pass\n", "requirements.txt": "",
        "podium.json": '{"entrypoint": "model.py:Other", "resources": {"cpu": 2, "memory_mib": 512}, "name": "dup"}',
    })
    bundle = build(src, gpu=1)
    m = manifest(bundle)
    assert (m["name"], m["entrypoint"]) == ("dup", "model.py:Other")
    assert m["resources"] == {"cpu": 2.0, "memory_mib": 512, "gpus": 1}


def test_it_explains_a_directory_that_is_not_a_model(build, tmp_path):
    with pytest.raises(BundleError, match="has no model.py"):
        build(write(tmp_path / "empty", {"README.md": "hi"}))
    src = write(tmp_path / "two", {"model.py": MODEL_PY + "\nclass Other(Echo):\n    def load(self): pass\n"
                                   "    def predict(self, b): pass\n"})
    with pytest.raises(BundleError, match=r"several classes with load\(\) and predict\(\) \(Echo, Other\)"):
        build(src)


def test_it_pins_a_directorys_imports_when_it_has_no_requirements_txt(build, tmp_path):
    src = write(tmp_path / "np", {"model.py": "import numpy\nimport helpers\n" + MODEL_PY,
                                  "helpers.py": "import os\n"})
    assert manifest(build(src))["requirements"] == [f"numpy=={version_of('numpy')}"]


TRUSS_MODEL = """
    from pathlib import Path

    class Model:
        def __init__(self, **kwargs):
            self._data_dir = kwargs["data_dir"]

        def load(self):
            self._greeting = (Path(self._data_dir) / "greeting.txt").read_text().strip()

        def predict(self, model_input):
            return {"output": f"{self._greeting}, {model_input['name']}"}
"""

TRUSS_CONFIG = """
    model_name: Hello Truss   # a comment
    python_version: py311
    requirements:
      - numpy==2.1.3
      - "requests>=2"
    resources:
      cpu: "500m"
      memory: 2Gi
      use_gpu: false
"""


def test_it_takes_a_truss_directory_as_it_is(build, load_bundle, tmp_path):
    src = write(tmp_path / "hello", {
        "config.yaml": TRUSS_CONFIG, "model/__init__.py": "", "model/model.py": TRUSS_MODEL,
        "data/greeting.txt": "Hello\n",
    })
    bundle = build(src)
    m = manifest(bundle)
    assert (m["name"], m["flavor"], m["python"]) == ("hello-truss", "custom", "3.11")
    assert m["entrypoint"] == "model/model.py:Model"
    assert m["requirements"] == ["numpy==2.1.3", "requests>=2"]
    assert m["resources"] == {"cpu": 0.5, "memory_mib": 2048, "gpus": 0}
    assert (bundle.root / "config.yaml").is_file()
    assert load_bundle(bundle.root, {"name": "Ada"}) == {"output": "Hello, Ada"}


# -- requirements ---------------------------------------------------------------------------------------------------


def test_it_pins_installed_versions_without_local_labels():
    from podium.requirements import pin

    assert pin("scikit-learn") == f"scikit-learn=={md.version('scikit-learn')}"
    assert pin("torch") == f"torch=={md.version('torch').split('+')[0]}"


def test_it_explains_a_requirement_that_is_not_installed():
    from podium.errors import RequirementError
    from podium.requirements import pin

    with pytest.raises(RequirementError, match=r"no-such-package-xyz is not installed in this Python .*requirements="):
        pin("no-such-package-xyz")


# -- the tarball ----------------------------------------------------------------------------------------------------


def test_the_tarball_is_deterministic(build, tmp_path):
    src = write(tmp_path / "echo", {"model.py": MODEL_PY, "requirements.txt": "requests==2.32.3\n", "a/b.txt": "b"})
    one = build(src)
    (src / "a/b.txt").touch()
    two = build(src)
    (tmp_path / "one.tar.gz").write_bytes(b"")
    size = make_tarball(one.root, tmp_path / "one.tar.gz")
    make_tarball(two.root, tmp_path / "two.tar.gz")
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    assert size == (tmp_path / "one.tar.gz").stat().st_size
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        names = tar.getnames()
        assert names == sorted(names) and "podium.json" in names and "a/b.txt" in names
        assert {(m.mtime, m.uid, m.uname) for m in tar.getmembers()} == {(0, 0, "")}


def test_it_refuses_a_bundle_over_the_size_limit(build, tmp_path, monkeypatch):
    src = write(tmp_path / "big", {"model.py": MODEL_PY, "requirements.txt": ""})
    (src / "weights.bin").write_bytes(np.random.default_rng(0).bytes(300_000))
    bundle = build(src)
    monkeypatch.setenv("PODIUM_MAX_BUNDLE_MIB", "0.25")
    with pytest.raises(BundleError, match=r"over the 256\.0 KiB limit \(largest files: weights\.bin \(293\.0 KiB\)"):
        make_tarball(bundle.root, tmp_path / "big.tar.gz")


def test_scripting_warnings_do_not_leak(build):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(TinyNet(), name="tiny")
