"""The editor API without sandboxes: sources and conflicts, drafts, presence, syntax checks,
templates, and who may do what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import client_for
from webapp.ide import actions as ide_actions
from webapp.ide.models import TestRun
from webapp.serving import actions as serving_actions
from webapp.serving.models import Model, ModelVersion
from webapp.workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db

BASE = "/api/v1/workspaces/acme/models"


@pytest.fixture
def artifacts(tmp_path: Path, settings) -> Path:
    settings.PODIUM_ARTIFACTS_DIR = tmp_path
    return tmp_path


@pytest.fixture
def bob(member_of):
    return member_of("bob", "developer")


@pytest.fixture
def churn(alice):
    response = client_for(alice).post(BASE, {"name": "churn", "template": "custom"}, format="json")
    assert response.status_code == 201, response.content
    return Model.objects.get(name="churn")


def test_it_lists_the_templates(alice, acme):
    response = client_for(alice).get("/api/v1/workspaces/acme/model-templates")
    assert response.status_code == 200
    ids = [t["id"] for t in response.json()]
    assert ids == ["sklearn", "pytorch", "custom", "zero-shot"]
    assert all(t["name"] and t["description"] and t["sample_input"] for t in response.json())


def test_it_creates_a_model_from_a_template(alice, acme):
    response = client_for(alice).post(BASE, {"name": "iris", "template": "sklearn"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "iris"
    source = client_for(alice).get(f"{BASE}/iris/source").json()
    assert set(source["files"]) == {"model.py", "requirements.txt"}
    assert source["revision"] == 1 and source["saved_by"] == "alice"
    assert source["sample_input"] == {"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    assert AuditEvent.objects.filter(action="model.create", data__template="sklearn").exists()


def test_it_refuses_a_taken_name_and_an_unknown_template(alice, churn):
    client = client_for(alice)
    taken = client.post(BASE, {"name": "churn", "template": "sklearn"}, format="json")
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    unknown = client.post(BASE, {"name": "other", "template": "tensorflow"}, format="json")
    assert unknown.status_code == 400 and "sklearn" in unknown.json()["detail"]
    bad_name = client.post(BASE, {"name": "Not A Name", "template": "custom"}, format="json")
    assert bad_name.status_code == 400


def test_a_save_makes_a_new_revision(alice, churn):
    client = client_for(alice)
    source = client.get(f"{BASE}/churn/source").json()
    files = {**source["files"], "model.py": "class Model:\n    def predict(self, body):\n        return 1\n"}
    saved = client.put(f"{BASE}/churn/source", {"files": files, "base_revision": 1, "sample_input": {"x": 1}},
                       format="json")
    assert saved.status_code == 200, saved.content
    body = saved.json()
    assert body["revision"] == 2 and body["files"]["model.py"] == files["model.py"]
    assert body["sample_input"] == {"x": 1}
    assert AuditEvent.objects.filter(action="model.source_save", data__revision=2).exists()
    # The revision a merge started from stays readable.
    old = client.get(f"{BASE}/churn/source?revision=1").json()
    assert old["revision"] == 1 and old["files"]["model.py"] != files["model.py"]


def test_a_stale_save_is_refused_with_their_version(alice, bob, churn):
    files = client_for(alice).get(f"{BASE}/churn/source").json()["files"]
    bobs = {**files, "model.py": "# bob's\n"}
    assert client_for(bob).put(f"{BASE}/churn/source", {"files": bobs, "base_revision": 1},
                               format="json").status_code == 200
    alices = {**files, "model.py": "# alice's\n"}
    response = client_for(alice).put(f"{BASE}/churn/source", {"files": alices, "base_revision": 1}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conflict"
    assert body["detail"].startswith("bob saved a newer version at ")
    assert body["detail"].endswith("compare and merge before saving.")
    assert body["theirs"]["revision"] == 2 and body["theirs"]["saved_by"] == "bob"
    assert body["theirs"]["files"]["model.py"] == "# bob's\n"
    # Nothing of alice's was written; after merging she saves on top of bob's revision.
    assert client_for(alice).get(f"{BASE}/churn/source").json()["files"]["model.py"] == "# bob's\n"
    merged = client_for(alice).put(f"{BASE}/churn/source", {"files": alices, "base_revision": 2}, format="json")
    assert merged.status_code == 200 and merged.json()["revision"] == 3


@pytest.mark.parametrize(("files", "message"), [
    ({"../evil.py": "x"}, "inside the model"),
    ({"/etc/passwd": "x"}, "absolute"),
    ({"a//b.py": "x"}, "inside the model"),
    ({"model.py": "x" * (1024 * 1024 + 1)}, "larger than 1 MiB"),
    ({f"f{i}.py": "" for i in range(201)}, "at most 200 files"),
    ({"pkg": "x", "pkg/a.py": "y"}, "both a file and a folder"),
    ({"_podium/model_server.py": "x"}, "reserved"),
])
def test_it_refuses_bad_paths_and_sizes(alice, churn, files, message):
    response = client_for(alice).put(f"{BASE}/churn/source", {"files": files, "base_revision": 1}, format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]


def test_an_uploaded_model_gets_its_source_from_its_bundle(alice, acme, artifacts):
    model = Model.objects.create(workspace=acme, name="uploaded", created_by=alice.user)
    version = ModelVersion.objects.create(workspace=acme, model=model, number=1, flavor="sklearn", manifest={},
                                          bundle_sha256="0" * 64, bundle_size=1, status="ready",
                                          created_by=alice.user)
    bundle = serving_actions.version_dir(version) / "code" / "bundle"
    (bundle / "artifacts").mkdir(parents=True)
    (bundle / "podium.json").write_text(json.dumps({"flavor": "sklearn", "artifact": "artifacts/model.joblib"}))
    (bundle / "requirements.txt").write_text("scikit-learn==1.9.1\n")
    (bundle / "artifacts" / "model.joblib").write_bytes(b"\x80\x04\x95\x00binary\xff")
    source = client_for(alice).get(f"{BASE}/uploaded/source").json()
    assert set(source["files"]) == {"podium.json", "requirements.txt"}
    assert source["binary"] == ["artifacts/model.joblib"]
    assert source["revision"] == 1 and source["saved_by"] == "alice"
    refused = client_for(alice).put(f"{BASE}/uploaded/source", {
        "files": {**source["files"], "artifacts/model.joblib": "text"}, "base_revision": 1}, format="json")
    assert refused.status_code == 400 and "read-only" in refused.json()["detail"]


def test_a_model_without_code_has_an_empty_source(alice, acme):
    Model.objects.create(workspace=acme, name="empty")
    body = client_for(alice).get(f"{BASE}/empty/source").json()
    assert body == {"files": {}, "binary": [], "revision": 0, "saved_by": None, "saved_at": None,
                    "sample_input": None}


def test_drafts_are_kept_per_member(alice, bob, churn):
    draft = {"files": {"model.py": "# work in progress\n"}, "base_revision": 1, "sample_input": {"text": "hi"}}
    assert client_for(alice).get(f"{BASE}/churn/draft").json() == {"detail": "no draft", "code": "not_found"}
    saved = client_for(alice).put(f"{BASE}/churn/draft", draft, format="json")
    assert saved.status_code == 200, saved.content
    mine = client_for(alice).get(f"{BASE}/churn/draft")
    assert mine.status_code == 200
    assert {k: mine.json()[k] for k in ("files", "base_revision", "sample_input")} == draft
    assert mine.json()["updated_at"]
    assert client_for(bob).get(f"{BASE}/churn/draft").status_code == 404
    assert client_for(alice).delete(f"{BASE}/churn/draft").status_code == 204
    assert client_for(alice).get(f"{BASE}/churn/draft").status_code == 404


def test_members_see_who_else_is_editing(alice, bob, churn, settings):
    url = f"{BASE}/churn/editing"
    assert client_for(alice).post(url).json() == {"editors": []}
    others = client_for(bob).post(url).json()["editors"]
    assert [e["username"] for e in others] == ["alice"] and others[0]["since"]
    assert [e["username"] for e in client_for(alice).post(url).json()["editors"]] == ["bob"]
    assert client_for(bob).delete(url).status_code == 204
    assert client_for(alice).post(url).json() == {"editors": []}


def test_an_editor_silent_for_45_seconds_is_gone(alice, bob, churn, monkeypatch):
    import datetime as dt

    from django.utils import timezone

    url = f"{BASE}/churn/editing"
    client_for(bob).post(url)
    later = timezone.now() + dt.timedelta(seconds=46)
    monkeypatch.setattr(ide_actions.timezone, "now", lambda: later)
    assert client_for(alice).post(url).json() == {"editors": []}


def test_it_reports_syntax_errors_with_their_line(alice, churn):
    client = client_for(alice)
    code = "class Model:\n    def predict(self, body)\n        return body\n"
    response = client.post(f"{BASE}/churn/syntax", {"path": "model.py", "content": code}, format="json")
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["line"] == 2 and error["column"] >= 1 and "expected ':'" in error["message"]
    ok = client.post(f"{BASE}/churn/syntax", {"path": "model.py", "content": "x = 1\n"}, format="json")
    assert ok.json() == {"errors": []}
    other = client.post(f"{BASE}/churn/syntax", {"path": "notes.txt", "content": "def ("}, format="json")
    assert other.json() == {"errors": []}


def test_checking_syntax_never_runs_the_code(alice, churn, tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    response = client_for(alice).post(f"{BASE}/churn/syntax", {"path": "model.py", "content": code}, format="json")
    assert response.json() == {"errors": []} and not marker.exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_readers_cannot_write(member_of, churn, role):
    reader = client_for(member_of(f"{role}-vic", role))
    assert reader.get(f"{BASE}/churn/source").status_code == 200
    assert reader.post(f"{BASE}/churn/editing").status_code == 200
    writes = [
        reader.put(f"{BASE}/churn/source", {"files": {"model.py": ""}, "base_revision": 1}, format="json"),
        reader.put(f"{BASE}/churn/draft", {"files": {}, "base_revision": 1}, format="json"),
        reader.delete(f"{BASE}/churn/draft"),
        reader.post(f"{BASE}/churn/test-runs", {"files": {"model.py": ""}, "sample_input": {}}, format="json"),
        reader.post(f"{BASE}/churn/deploy", {}, format="json"),
        reader.post(BASE, {"name": "new", "template": "custom"}, format="json"),
    ]
    assert [r.status_code for r in writes] == [403] * len(writes)
    assert not TestRun.objects.exists()


def test_outsiders_get_the_answer_of_a_missing_model(charlie, churn):
    outsider = client_for(charlie)
    for method, suffix in [("get", "source"), ("put", "source"), ("get", "draft"), ("post", "editing"),
                           ("post", "syntax"), ("post", "test-runs"), ("post", "deploy")]:
        theirs = getattr(outsider, method)(f"{BASE}/churn/{suffix}", {}, format="json")
        missing = getattr(outsider, method)(f"{BASE}/no-such/{suffix}", {}, format="json")
        assert theirs.status_code == missing.status_code == 404, (method, suffix)
        assert theirs.content == missing.content


def test_a_test_run_checks_its_files_before_starting(alice, churn):
    response = client_for(alice).post(f"{BASE}/churn/test-runs", {
        "files": {"model.py": "class Model:\n    pass\n", "podium.json": "{not json"}, "sample_input": {}},
        format="json")
    assert response.status_code == 400 and "podium.json" in response.json()["detail"]
    assert not TestRun.objects.exists()


def test_readers_see_editors_but_are_not_counted_as_editing(alice, acme, churn, member_of):
    url = f"{BASE}/churn/editing"
    viewer = member_of("vera", "viewer")
    assert client_for(viewer).post(url).json() == {"editors": []}
    assert client_for(alice).post(url).json() == {"editors": []}  # vera is not editing
    assert [e["username"] for e in client_for(viewer).post(url).json()["editors"]] == ["alice"]
