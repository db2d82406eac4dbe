"""A Truss deploys as it is: each config.yaml key Truss documents either reaches the model as Truss would
pass it, or is refused or warned about at packaging, naming the key. Truss directories here are written the
way Truss's documentation shows them (config.yaml, model/model.py with class Model, packages/, data/)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from podium.errors import BundleError

from tests.client.test_bundle import manifest, write

CONFIG = """
    description: Greets people
    requirements_file: ./requirements.txt
    environment_variables:
      GREETING_STYLE: warm
      DEBUG: false
    resources:
      cpu: "1"
      memory: 512Mi
      use_gpu: false
    runtime:
      predict_concurrency: 3
    secrets:
      hf_access_token: null
    model_metadata:
      example_model_input: {"name": "Ada"}
    external_package_dirs:
      - ../shared_lib
    build_commands:
      - apt-get install -y tesseract-ocr
    system_packages:
      - tesseract-ocr
    made_up_key: 1
"""

MODEL = """
    import asyncio
    from pathlib import Path

    from greeting_helpers.words import hello
    from shared_helpers import punctuation


    class Model:
        def __init__(self, **kwargs):
            self._config = kwargs["config"]
            self._data_dir = kwargs["data_dir"]
            self._secrets = kwargs["secrets"]
            self._name = None

        async def load(self):
            await asyncio.sleep(0)
            self._name = (Path(self._data_dir) / "name.txt").read_text().strip()

        def preprocess(self, model_input):
            return {**model_input, "name": model_input["name"].title()}

        async def predict(self, model_input):
            if model_input.get("stream"):
                return self._stream(model_input["name"])
            return {"text": f"{hello()} {model_input['name']}{punctuation()}", "by": self._name}

        def _stream(self, name):
            for part in (hello(), " ", name):
                yield part

        async def postprocess(self, model_output):
            return {**model_output, "metadata": self._config["model_metadata"],
                    "secrets": sorted(self._secrets), "description": self._config["description"]}
"""


def truss(tmp_path: Path, config: str = CONFIG, model: str = MODEL, name: str = "greeter-truss") -> Path:
    write(tmp_path / "shared_lib", {"shared_helpers/__init__.py": "def punctuation():\n    return '!'\n"})
    return write(tmp_path / name, {
        "config.yaml": config, "model/__init__.py": "", "model/model.py": model,
        "requirements.txt": "# pinned\nnumpy==2.1.3\n",
        "packages/greeting_helpers/__init__.py": "", "packages/greeting_helpers/words.py":
            "def hello():\n    return 'Hello'\n",
        "data/name.txt": "podium\n",
    })


def test_a_trusss_settings_become_the_versions(build, tmp_path):
    bundle = build(truss(tmp_path))
    m = manifest(bundle)
    assert m["name"] == "greeter-truss"  # no model_name: the directory's name
    assert m["requirements"] == ["numpy==2.1.3"]  # from requirements_file
    assert m["env"] == {"GREETING_STYLE": "warm", "DEBUG": "false"}
    assert m["resources"] == {"cpu": 1.0, "memory_mib": 512, "gpus": 0}
    assert m["concurrency"] == 3
    assert m["truss"]["config"]["model_metadata"] == {"example_model_input": {"name": "Ada"}}
    assert m["truss"]["python_path"] == ["packages", "_external/0"]
    assert m["truss"]["secrets"] == {"hf_access_token": None}
    assert (bundle.root / "_external" / "0" / "shared_helpers" / "__init__.py").is_file()


def test_every_key_podium_does_not_honour_is_named_in_a_warning(build, tmp_path):
    warnings = build(truss(tmp_path)).warnings
    assert any(w.startswith("config.yaml: build_commands is ignored: Podium does not run build commands")
               for w in warnings), warnings
    assert any(w.startswith("config.yaml: system_packages is ignored") for w in warnings)
    assert "config.yaml: made_up_key is not a Truss setting Podium knows; ignored" in warnings
    assert any(w.startswith("config.yaml: secrets (hf_access_token): ") for w in warnings)


def test_the_model_is_called_as_truss_calls_it(build, load_bundle, tmp_path):
    answer = load_bundle(build(truss(tmp_path)).root, {"name": "ada"})
    assert answer == {"text": "Hello Ada!", "by": "podium", "metadata": {"example_model_input": {"name": "Ada"}},
                      "secrets": ["hf_access_token"], "description": "Greets people"}


def test_a_predict_that_returns_a_generator_streams_its_chunks(build, load_bundle, tmp_path):
    assert load_bundle(build(truss(tmp_path)).root, {"name": "ada", "stream": True}) == {
        "streamed": ["Hello", " ", "Ada"]}


def test_an_async_generator_streams_too(build, load_bundle, tmp_path):
    model = """
        class Model:
            def load(self):
                pass

            async def predict(self, model_input):
                for n in range(model_input["n"]):
                    yield {"token": n}
    """
    root = write(tmp_path / "agen", {"config.yaml": "model_name: agen\n", "model/model.py": model})
    assert load_bundle(build(root).root, {"n": 3}) == {"streamed": [{"token": 0}, {"token": 1}, {"token": 2}]}


@pytest.mark.parametrize(("config", "message"), [
    ("requirements: [numpy]\nrequirements_file: requirements.txt\n", "give requirements or requirements_file"),
    ("requirements_file: ../elsewhere.txt\n", "is not a file inside the Truss"),
    ("environment_variables:\n  PODIUM_TOKEN: x\n", "PODIUM_TOKEN is set by Podium"),
    ("environment_variables:\n  BAD-NAME: x\n", "'BAD-NAME' is not a valid variable name"),
    ("runtime:\n  predict_concurrency: 0\n", "predict_concurrency 0 must be a whole number from 1 to 64"),
    ("resources:\n  memory: lots\n", "resources.memory 'lots' is not a size"),
    ("model_name: [unclosed\n", "is not valid YAML"),
])
def test_a_config_podium_cannot_honour_is_refused_naming_the_key(build, tmp_path, config, message):
    root = write(tmp_path / "bad", {"config.yaml": config, "model/model.py": textwrap.dedent(MODEL),
                                    "requirements.txt": "numpy\n"})
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(root)


def test_a_custom_class_and_entrypoint_names_are_honoured(build, load_bundle, tmp_path):
    config = "model_name: Named\nmodel_module_dir: src\nmodel_class_filename: serve.py\nmodel_class_name: Greeter\n"
    model = "class Greeter:\n    def load(self):\n        pass\n\n    def predict(self, x):\n        return {'ok': x}\n"
    root = write(tmp_path / "named", {"config.yaml": config, "src/serve.py": model})
    bundle = build(root)
    assert manifest(bundle)["entrypoint"] == "src/serve.py:Greeter" and bundle.name == "named"
    assert load_bundle(bundle.root, 1) == {"ok": 1}
