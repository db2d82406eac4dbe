"""Signed artifact URLs: the way Nomad clients fetch a sandbox's code from Podium."""

from __future__ import annotations

import io
import tarfile
import time

from django.test import Client

from sandbox.signing import sign_url


def make_code_dir(settings, tmp_path):
    settings.PODIUM_ARTIFACT_ROOT = tmp_path
    settings.PODIUM_ARTIFACT_SIGNING_KEY = "k" * 40
    code = tmp_path / "artifacts" / "1" / "2" / "v1" / "code"
    (code / "bundle").mkdir(parents=True)
    (code / "bundle" / "model.py").write_text("class Model: ...\n")
    return code


def url_for(path: str, **kwargs) -> str:
    return sign_url("http://testserver/sandbox-artifacts", path, b"k" * 40, **kwargs).replace("http://testserver", "")


def test_a_signed_url_answers_the_directory_as_a_tarball(settings, tmp_path):
    make_code_dir(settings, tmp_path)
    response = Client().get(url_for("artifacts/1/2/v1/code.tar.gz"))
    assert response.status_code == 200 and response["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content)), mode="r:gz") as tar:
        assert "./bundle/model.py" in tar.getnames()


def test_anything_else_is_the_same_404(settings, tmp_path):
    make_code_dir(settings, tmp_path)
    good = url_for("artifacts/1/2/v1/code.tar.gz")
    tampered = good.replace("signature=", "signature=0")
    expired = url_for("artifacts/1/2/v1/code.tar.gz", now=time.time() - 7200)
    other = url_for("artifacts/1/2/v1/code.tar.gz").replace("v1/code", "v2/code")
    escape = url_for("../../etc.tar.gz")
    missing = url_for("artifacts/9/9/v9/code.tar.gz")
    unsigned = "/sandbox-artifacts/artifacts/1/2/v1/code.tar.gz"
    answers = [Client().get(u) for u in (tampered, expired, other, escape, missing, unsigned)]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1


def test_the_nomad_executor_signs_with_the_key_the_view_checks(settings, tmp_path, monkeypatch):
    code = make_code_dir(settings, tmp_path)
    for name in ("PODIUM_ARTIFACT_SIGNING_KEY", "PODIUM_SECRET_KEY", "PODIUM_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PODIUM_URL", "http://testserver")
    from sandbox.executors.nomad import NomadConfig

    config = NomadConfig.from_env()
    relative = code.relative_to(config.artifact_root)
    url = sign_url(config.artifact_url, f"{relative}.tar.gz", config.signing_key)
    assert Client().get(url.replace("http://testserver", "")).status_code == 200
