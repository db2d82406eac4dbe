"""The client's own formatting and exit codes, against canned answers (httpx.MockTransport).

These tests pin what the client sends and how it shows what comes back. Whether the server answers that way is
the end-to-end test's business, once the server exists.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

import httpx
import podium
import pytest
from podium.cli import follow_logs, main
from podium.deploy import Progress, wait_until_ready

KEY = "pod_test_key"
ME = {"username": "alice", "workspaces": [{"slug": "acme"}], "api_key": {"name": "ci", "scopes": ["deploy"]}}
MODEL = textwrap.dedent("""
    class Echo:
        def load(self):
            pass

        def predict(self, body):
            return body
""")


class FakeServer:
    """Answers canned JSON by (method, path); records every request."""

    def __init__(self, routes: dict[tuple[str, str], object]) -> None:
        self.routes = {("GET", "/api/v1/me"): ME, **routes}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        missing = (404, {"detail": "Not found.", "code": "not_found"})
        answer = self.routes.get((request.method, request.url.path), missing)
        if isinstance(answer, list) and answer and isinstance(answer[0], tuple):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return httpx.Response(status, json=body)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


@pytest.fixture(autouse=True)
def _config(monkeypatch):
    podium.logout()
    monkeypatch.setenv("PODIUM_URL", "http://podium.test/")
    monkeypatch.setenv("PODIUM_API_KEY", KEY)
    monkeypatch.delenv("PODIUM_WORKSPACE", raising=False)


def client_for(server: FakeServer) -> podium.Client:
    return podium.Client(transport=server.transport)


def test_it_says_how_to_configure_when_nothing_is_set(monkeypatch, capsys):
    monkeypatch.delenv("PODIUM_URL")
    assert main(["versions", "churn"]) == 2
    assert capsys.readouterr().err == (
        "podium: error: no Podium URL: call podium.login(url, api_key) or set PODIUM_URL (e.g. http://localhost:8000)\n"
    )


def test_login_wins_over_the_environment_and_checks_the_url():
    podium.login("https://podium.example.com/", "pod_other")
    assert podium.Client().config.url == "https://podium.example.com"
    with pytest.raises(podium.ConfigurationError, match="is not an http"):
        podium.login("podium.example.com", "pod_x")


def test_it_reads_the_key_from_a_file(monkeypatch, tmp_path):
    monkeypatch.delenv("PODIUM_API_KEY")
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv("PODIUM_API_KEY_FILE", str(tmp_path / "key"))
    assert podium.Client().config.api_key == KEY


def test_it_carries_the_servers_detail_and_exits_1(capsys):
    server = FakeServer({("GET", "/api/v1/workspaces/acme/models/churn/versions"):
                         (403, {"detail": "Your key lacks the read scope.", "code": "permission_denied"})})
    assert main(["versions", "churn"], transport=server.transport) == 1
    err = capsys.readouterr().err
    assert err == ("podium: error: Your key lacks the read scope. "
                   "(HTTP 403 from GET /api/v1/workspaces/acme/models/churn/versions)\n")
    with pytest.raises(podium.PermissionDenied) as raised:
        client_for(server).versions("churn")
    assert (raised.value.status, raised.value.detail, raised.value.code) == (
        403, "Your key lacks the read scope.", "permission_denied")


def test_a_bad_key_gets_a_hint(capsys):
    server = FakeServer({("GET", "/api/v1/me"): (401, {"detail": "Invalid API key.", "code": "authentication_failed"})})
    assert main(["versions", "churn"], transport=server.transport) == 1
    assert "check PODIUM_API_KEY" in capsys.readouterr().err


def test_an_unreachable_server_exits_1(capsys):
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    assert main(["versions", "churn"], transport=httpx.MockTransport(refuse)) == 1
    assert capsys.readouterr().err == "podium: error: cannot reach Podium at http://podium.test: connection refused\n"


def test_predict_sends_the_json_as_it_is_and_prints_the_answer(capsys):
    server = FakeServer({("POST", "/v1/models/churn/versions/3/predict"): {"predictions": [1, 0]}})
    assert main(["predict", "churn", '{"inputs": [[1, 2], [3, 4]]}', "--version", "3"], transport=server.transport) == 0
    assert json.loads(server.requests[-1].content) == {"inputs": [[1, 2], [3, 4]]}
    assert server.requests[-1].headers["Content-Type"] == "application/json"
    assert json.loads(capsys.readouterr().out) == {"predictions": [1, 0]}


def test_predict_rejects_bad_json_with_exit_2(capsys):
    assert main(["predict", "churn", "{inputs"], transport=FakeServer({}).transport) == 2
    assert capsys.readouterr().err.startswith("podium: error: the request body is not valid JSON")


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["promote", "churn", "three"])
    assert exited.value.code == 2
    assert "invalid int value: 'three'" in capsys.readouterr().err


def test_versions_prints_a_table_newest_first_with_aliases(capsys):
    versions = [
        {"number": 1, "status": "ready", "created_at": "2025-01-02T10:00:00Z", "description": "first"},
        {"number": 2, "status": "ready", "created_at": "2025-01-03T11:00:00Z", "description": ""},
        {"number": 3, "status": "failed", "created_at": "2025-01-03T12:00:00Z", "description": "oops"},
    ]
    model = {"name": "churn", "aliases": [
        {"name": "production", "routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]},
        {"name": "staging", "routes": [{"version": 2, "weight": 100}]},
    ]}
    server = FakeServer({("GET", "/api/v1/workspaces/acme/models/churn/versions"): versions,
                         ("GET", "/api/v1/workspaces/acme/models/churn"): model})
    assert main(["versions", "churn"], transport=server.transport) == 0
    assert capsys.readouterr().out.splitlines() == [
        "VERSION  STATUS  ALIASES                 CREATED              DESCRIPTION",
        "3        failed                          2025-01-03 12:00:00  oops",
        "2        ready   production 10%,staging  2025-01-03 11:00:00  ",
        "1        ready   production 90%          2025-01-02 10:00:00  first",
    ]


def test_promote_and_rollback(capsys):
    server = FakeServer({
        ("POST", "/api/v1/workspaces/acme/models/churn/aliases/staging"):
            {"name": "staging", "routes": [{"version": 4, "weight": 100}]},
        ("POST", "/api/v1/workspaces/acme/models/churn/rollback"):
            {"name": "production", "routes": [{"version": 3, "weight": 90}, {"version": 4, "weight": 10}]},
    })
    assert main(["promote", "churn", "4", "--alias", "staging"], transport=server.transport) == 0
    assert json.loads(server.requests[-1].content) == {"version": 4}
    assert main(["rollback", "churn"], transport=server.transport) == 0
    assert json.loads(server.requests[-1].content) == {"alias": "production"}
    assert capsys.readouterr().out == "churn: staging -> v4\nchurn: production -> v3 (90%), v4 (10%)\n"


def test_logs_of_the_newest_version(capsys):
    server = FakeServer({
        ("GET", "/api/v1/workspaces/acme/models/churn/versions"): [{"number": 1}, {"number": 2}],
        ("GET", "/api/v1/workspaces/acme/models/churn/versions/2/logs"):
            {"lines": [{"time": "2025-01-03T11:00:00Z", "stream": "stdout", "replica": 0, "text": "loaded"}]},
    })
    assert main(["logs", "churn", "--tail", "5", "--build"], transport=server.transport) == 0
    assert dict(server.requests[-1].url.params) == {"tail": "5", "source": "build"}
    assert capsys.readouterr().out == "2025-01-03T11:00:00Z stdout loaded\n"


def test_follow_prints_each_line_once(capsys):
    line = {"time": "t1", "stream": "stderr", "text": "a"}
    server = FakeServer({("GET", "/api/v1/workspaces/acme/models/churn/versions/1/logs"): [
        (200, {"lines": [line]}), (200, {"lines": [line, {"time": "t2", "stream": "stdout", "text": "b"}]}),
    ]})
    polls = iter(range(2))

    def sleep(seconds):
        if next(polls, None) is None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        follow_logs(client_for(server), "churn", 1, tail=10, sleep=sleep)
    assert capsys.readouterr().out == "t1 stderr a\nt2 stdout b\n"


def version(status, steps=(), **extra):
    return {"number": 3, "status": status, "failed_step": None, "error": None, "endpoint": None,
            "steps": list(steps), **extra}


STEP = {"name": "environment", "status": "done", "started_at": "2025-01-03T11:00:00+00:00",
        "finished_at": "2025-01-03T11:00:01.500000+00:00"}


def test_deploy_uploads_the_bundle_and_shows_each_step(tmp_path, capsys):
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo/model.py").write_text(MODEL)
    (tmp_path / "echo/requirements.txt").write_text("")
    url = "http://podium.test/v1/models/echo/versions/3/predict"
    server = FakeServer({
        ("POST", "/api/v1/workspaces/acme/models/echo/versions"): (201, {"number": 3, "status": "queued"}),
        ("GET", "/api/v1/workspaces/acme/models/echo/versions/3"): [
            (200, version("building")),
            (200, version("starting", [STEP])),
            (200, version("ready", [STEP, {**STEP, "name": "start"}, {**STEP, "name": "ready"}], endpoint=url)),
        ],
    })
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("time.sleep", lambda s: None)
        argv = ["deploy", str(tmp_path / "echo"), "--description", "first", "--no-promote"]
        assert main(argv, transport=server.transport) == 0
    out, err = capsys.readouterr()
    assert out == url + "\n"
    lines = err.splitlines()
    assert [line.split()[1] for line in lines] == ["packaged", "uploaded", "environment", "start", "ready", "live"]
    assert "custom directory echo/, 0 requirements" in lines[0]
    assert lines[2].endswith("1.50s") and "echo v3" in lines[1]
    upload = server.requests[1]
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    body = upload.read()
    assert b'name="description"\r\n\r\nfirst' in body and b'name="promote"\r\n\r\nfalse' in body
    tar_bytes = body.split(b'filename="echo.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n', 1)[1]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz") as tar:
        assert json.load(tar.extractfile("podium.json"))["entrypoint"] == "model.py:Echo"


def test_a_failed_deploy_names_the_step_and_shows_the_logs(capsys):
    server = FakeServer({
        ("GET", "/api/v1/workspaces/acme/models/echo/versions/3"):
            version("failed", failed_step="environment", error="No matching distribution for numpy==0.0.1"),
        ("GET", "/api/v1/workspaces/acme/models/echo/versions/3/logs"):
            {"lines": [{"time": "t", "stream": "build", "replica": 0, "text": "uv: resolution failed"}]},
    })
    with pytest.raises(podium.DeploymentFailed) as raised:
        wait_until_ready(client_for(server), "echo", 3, progress=Progress(enabled=False), sleep=lambda s: None)
    assert server.requests[-1].url.params["source"] == "build"
    assert str(raised.value) == (
        "echo v3 failed at step 'environment': No matching distribution for numpy==0.0.1\n"
        "last log lines:\n  t build uv: resolution failed"
    )


def test_a_deployment_handle_wraps_inputs_for_array_models(capsys):
    import numpy as np

    server = FakeServer({
        ("POST", "/v1/models/churn/versions/3/predict"): {"predictions": [1]},
        ("POST", "/v1/models/echo/versions/1/predict"): {"echo": "hi"},
    })
    client = client_for(server)
    churn = podium.Deployment(client, "churn", 3, "sklearn", {"status": "ready"})
    assert churn.predict(np.array([[1.0, 2.0]])) == [1]
    assert json.loads(server.requests[-1].content) == {"inputs": [[1.0, 2.0]]}
    assert churn.url == "http://podium.test/v1/models/churn/versions/3/predict"
    echo = podium.Deployment(client, "echo", 1, "custom", {})
    assert echo.predict({"text": "hi"}) == {"echo": "hi"}
    assert json.loads(server.requests[-1].content) == {"text": "hi"}


def test_several_workspaces_need_a_choice():
    me = {**ME, "api_key": None, "workspaces": [{"slug": "acme"}, {"slug": "lab"}]}
    server = FakeServer({("GET", "/api/v1/me"): me})
    with pytest.raises(podium.ConfigurationError, match=r"several workspaces \(acme, lab\).*PODIUM_WORKSPACE"):
        client_for(server).versions("churn")
    assert podium.Client(workspace="lab", transport=server.transport).workspace == "lab"


def test_client_has_no_django():
    source = "\n".join(p.read_text() for p in Path(podium.__file__).parent.glob("*.py"))
    assert "django" not in source.lower()


def test_delete_asks_for_yes_when_it_cannot_ask(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    server = FakeServer({})
    assert main(["delete", "churn"], transport=server.transport) == 2
    assert "pass --yes to confirm" in capsys.readouterr().err
    assert not [r for r in server.requests if r.method == "DELETE"]


def test_delete_a_model_or_one_version(capsys):
    server = FakeServer({
        ("DELETE", "/api/v1/workspaces/acme/models/churn"): (204, None),
        ("DELETE", "/api/v1/workspaces/acme/models/churn/versions/3"): (204, None),
        ("DELETE", "/api/v1/workspaces/acme/models/churn/versions/4"):
            (409, {"detail": "Version 4 still takes traffic; move its aliases to another version first.",
                   "code": "conflict"}),
    })
    assert main(["delete", "churn", "--version", "3", "--yes"], transport=server.transport) == 0
    assert main(["delete", "churn", "-y"], transport=server.transport) == 0
    assert main(["delete", "churn", "--version", "4", "--yes"], transport=server.transport) == 1
    captured = capsys.readouterr()
    assert captured.out == "deleted version 3 of churn\ndeleted churn and every version of it\n"
    assert "Version 4 still takes traffic" in captured.err
