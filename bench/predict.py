"""Prediction latency and throughput: Podium's gateway against a plain uvicorn app and BentoML.

All three serve the same scikit-learn model (and Podium also a no-op model), loaded
from the same joblib file, and are driven by ``wrk`` with the same JSON body at 1
and 16 connections. Prints p50, p99 and requests/s for each, side by side.

Usage (with Podium running, e.g. ``make up`` in another terminal):

    .venv/bin/python bench/predict.py                 # reads URL and key from var/demo.json
    .venv/bin/python bench/predict.py --duration 15 --skip-bentoml

BentoML runs from its own virtual environment (``var/bench/bentoml``, created on
first use with pip). ``wrk`` comes from Debian (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from importlib import metadata
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BODY = {"inputs": [[5.1, 3.5, 1.4, 0.2]]}

PLAIN_APP = '''
import json, joblib, numpy

model = joblib.load({artifact!r})

async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    inputs = numpy.asarray(json.loads(body)["inputs"])
    answer = json.dumps({{"predictions": model.predict(inputs).tolist()}}).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": answer}})
'''

BENTO_SERVICE = '''
import bentoml, joblib, numpy


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load({artifact!r})

    @bentoml.api
    def predict(self, inputs: list[list[float]]) -> dict:
        return {{"predictions": self.model.predict(numpy.asarray(inputs)).tolist()}}
'''

WRK_SCRIPT = '''
wrk.method = "POST"
wrk.body = {body!r}
wrk.headers["Content-Type"] = "application/json"
{auth}
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 60, **kwargs: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, json=BODY, timeout=5, **kwargs).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered 200")


def train(directory: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    path = directory / "model.joblib"
    joblib.dump(model, path)
    return path


def wrk(url: str, connections: int, duration: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    auth = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=json.dumps(BODY), auth=auth))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50_ms": millis("50"), "p99_ms": millis("99"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "errors": float(errors[1]) if errors else 0.0,
    }


def start(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def bundle(manifest: dict[str, object], files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {"podium.json": json.dumps({"format": 1, **manifest}).encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def deploy(url: str, key: str, name: str, data: bytes) -> str:
    headers = {"authorization": f"Bearer {key}"}
    workspace = httpx.get(f"{url}/api/v1/me", headers=headers).json()["workspaces"][0]["slug"]
    created = httpx.post(f"{url}/api/v1/workspaces/{workspace}/models/{name}/versions", headers=headers,
                         files={"bundle": ("bundle.tar.gz", data, "application/gzip")}, timeout=60)
    created.raise_for_status()
    number = created.json()["number"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        version = httpx.get(f"{url}/api/v1/workspaces/{workspace}/models/{name}/versions/{number}",
                            headers=headers).json()
        if version["status"] == "ready":
            break
        if version["status"] == "failed":
            raise SystemExit(f"{name} failed in step {version['failed_step']}: {version['error']}")
        time.sleep(0.5)
    endpoint = f"{url}/v1/models/{name}/versions/{number}/predict"
    wait_http(endpoint, headers=headers)
    return endpoint


def bentoml_python(given: str | None) -> Path:
    if given:
        return Path(given)
    venv = ROOT / "var" / "bench" / "bentoml"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        sklearn = metadata.version("scikit-learn")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "bentoml", f"scikit-learn=={sklearn}"], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--podium-url")
    parser.add_argument("--key")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--skip-bentoml", action="store_true")
    parser.add_argument("--bentoml-python", help="a Python with bentoml installed (default: var/bench/bentoml)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    demo = json.loads((ROOT / "var" / "demo.json").read_text()) if not args.key else {}
    url = (args.podium_url or demo.get("url", "http://127.0.0.1:8000")).rstrip("/")
    key = args.key or demo["api_key"]
    work = Path(tempfile.mkdtemp(prefix="podium-bench-"))
    work.chmod(0o755)
    artifact = train(work)
    artifact.chmod(0o644)
    connections = [int(c) for c in args.connections.split(",")]
    results: dict[str, dict[int, dict[str, float]]] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        (work / "plain_app.py").write_text(textwrap.dedent(PLAIN_APP.format(artifact=str(artifact))))
        procs.append(start([sys.executable, "-m", "uvicorn", "plain_app:app", "--port", str(port),
                            "--log-level", "warning", "--no-access-log"], work))
        targets: dict[str, tuple[str, dict[str, str]]] = {"plain uvicorn": (f"http://127.0.0.1:{port}/", {})}
        if not args.skip_bentoml:
            bport = free_port()
            (work / "service.py").write_text(textwrap.dedent(BENTO_SERVICE.format(artifact=str(artifact))))
            bentoml = str(bentoml_python(args.bentoml_python))
            procs.append(start([bentoml, "-m", "bentoml", "serve", "service:Classifier", "--port", str(bport)],
                               work, {"BENTOML_DO_NOT_TRACK": "true"}))
            targets["BentoML"] = (f"http://127.0.0.1:{bport}/predict", {})
        requirements = [f"{p}=={metadata.version(p)}" for p in ("scikit-learn", "numpy", "scipy", "joblib")]
        sk = bundle({"flavor": "sklearn", "artifact": "artifacts/model.joblib", "requirements": requirements},
                    {"artifacts/model.joblib": artifact.read_bytes()})
        noop = bundle({"flavor": "custom", "entrypoint": "model.py:Model"},
                      {"model.py": b"class Model:\n    def predict(self, body):\n        return {}\n"})
        auth = {"Authorization": f"Bearer {key}"}
        targets["Podium (sklearn)"] = (deploy(url, key, "bench-sklearn", sk), auth)
        targets["Podium (no-op)"] = (deploy(url, key, "bench-noop", noop), auth)
        for name, (endpoint, headers) in targets.items():
            wait_http(endpoint, headers=headers)
            results[name] = {c: wrk(endpoint, c, args.duration, headers) for c in connections}
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nprediction benchmark, {args.duration}s per run, wrk -t1 (one machine, all processes share its cores)")
    print(f"{'server':<20}{'conns':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}{'errors':>8}")
    for name, by_conn in results.items():
        for conns, figures in by_conn.items():
            print(f"{name:<20}{conns:>6}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}"
                  f"{figures['rps']:>10.0f}{figures['errors']:>8.0f}")


if __name__ == "__main__":
    main()
