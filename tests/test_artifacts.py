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


def env_archive(files: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("bin/python")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return buffer.getvalue()


def make_env_dir(settings, tmp_path):
    settings.PODIUM_ARTIFACT_ROOT = tmp_path
    settings.PODIUM_ARTIFACT_SIGNING_KEY = "k" * 40
    (tmp_path / "sandbox" / "envs" / "abc").mkdir(parents=True)
    return tmp_path / "sandbox" / "envs" / "abc.tar.gz"


def put(url: str, body: bytes):
    return Client().put(url, data=body, content_type="application/gzip")


def test_a_build_job_uploads_its_environment_once_and_jobs_fetch_it(settings, tmp_path):
    archive = make_env_dir(settings, tmp_path)
    body = env_archive({"bin/python": b"\x7fELF", "lib/python3.11/site-packages/demo.py": b"ANSWER = 42\n"})
    upload = url_for("sandbox/envs/abc.tar.gz", method="PUT")
    assert put(upload, body).status_code == 201
    assert archive.read_bytes() == body and not archive.stat().st_mode & 0o222
    assert put(upload, body).status_code == 409  # written once: never replaced
    response = Client().get(url_for("sandbox/envs/abc.tar.gz"))
    assert response.status_code == 200 and b"".join(response.streaming_content) == body


def test_an_upload_needs_a_signature_made_for_uploading(settings, tmp_path):
    archive = make_env_dir(settings, tmp_path)
    body = env_archive({"a": b"1"})
    answers = [
        put(url_for("sandbox/envs/abc.tar.gz"), body),  # signed for GET
        put(url_for("sandbox/envs/abc.tar.gz", method="PUT", now=time.time() - 7200), body),
        put(url_for("sandbox/envs/other.tar.gz", method="PUT"), body),  # no such environment being built
        put(url_for("../../x.tar.gz", method="PUT"), body),
    ]
    assert {a.status_code for a in answers} == {404} and not archive.exists()
    assert Client().get(url_for("sandbox/envs/abc.tar.gz", method="PUT")).status_code == 404


def test_an_upload_is_bounded_and_must_be_a_plain_archive(settings, tmp_path):
    archive = make_env_dir(settings, tmp_path)
    settings.PODIUM_ENV_ARCHIVE_MAX_MIB = 1
    upload = url_for("sandbox/envs/abc.tar.gz", method="PUT")
    assert put(upload, b"\0" * ((1 << 20) + 1)).status_code == 413
    assert put(upload, b"not a tarball").status_code == 400
    link = put(upload, env_archive({"a": b"1"}, link="/etc/shadow"))
    assert link.status_code == 400 and b"not a regular file" in link.content
    escape = put(upload, env_archive({"../../escape": b"1"}))
    assert escape.status_code == 400 and b"outside the environment" in escape.content
    assert not archive.exists() and [p.name for p in archive.parent.iterdir()] == ["abc"]
