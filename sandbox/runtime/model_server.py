"""Podium's model server: loads one model bundle and serves predictions.

This file runs INSIDE a sandbox, with the Python of the model's own
environment, and is the only place a model bundle is ever loaded (the web and
worker processes read ``podium.json`` as JSON and nothing else). It is
standard-library only on purpose: the environment holds exactly the user's
pinned requirements, and a web framework of ours in it could conflict with
them. HTTP/1.1 is therefore spoken by a small hand-written asyncio server;
its only client is Podium's gateway, which sends ``Content-Length`` bodies over
keep-alive connections, so the subset it implements is the whole contract.

Usage: ``python model_server.py [BUNDLE_DIR] [--concurrency N] [--max-body BYTES] [--predict-timeout S]``
  BUNDLE_DIR          the bundle directory (default: $PODIUM_BUNDLE, else the current directory)
  --concurrency       predictions run at once (default 1; predict() runs in threads)
  --max-body          largest request body in bytes (default 10 MiB)
  --predict-timeout   seconds a predict() may take (default: no limit)
  PODIUM_LISTEN       (environment, set by the executor) ``unix:/path.sock`` or ``tcp:HOST:PORT``

Routes:
  GET  /healthz   200 while the process runs (liveness)
  GET  /ready     200 once the model is loaded, 503 before (readiness)
  POST /predict   JSON in, JSON out; see docs/model-bundles.md

JSON edge cases: a body nested deeper than Python's parser can follow is a 400 that says so; a
NaN or infinity in predict()'s answer is sent as ``null`` (as JavaScript's JSON.stringify does),
so every answer is strict JSON, and the log names where each one was.

Hung predictions: a predict() that has not returned after ``--predict-timeout`` cannot be
stopped (it runs in a thread), so its call gets a 504 that says so and the whole server is
recycled: it stops taking calls, answers every call that was waiting for a slot with a 503
carrying ``X-Podium-Not-Run: 1`` (the call never ran, so the gateway hands it to another
replica), and exits with code 4; the supervisor starts it again.

Exit codes: 3 when the bundle cannot be loaded (the traceback is on stderr); 4 after a
predict() outlived the predict timeout.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

EXIT_LOAD_FAILED = 3
EXIT_PREDICT_HUNG = 4
RECYCLE_MAX_S = 5.0  # at most this long to answer the hung call (504) and the waiting ones (503) before exiting
NOT_RUN_HEADER = "X-Podium-Not-Run: 1\r\n"  # the gateway may send the call to another replica
NOT_RUN = {"detail": "this replica is being restarted and did not run the call; send it again"}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
           500: "Internal Server Error", 503: "Service Unavailable", 504: "Gateway Timeout"}
# Exceptions that mean "the input was wrong" rather than "the model is broken".
INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)


def log(message: str) -> None:
    sys.stderr.write(f"[podium] {message}\n")
    sys.stderr.flush()


class BundleError(Exception):
    """The bundle is not loadable; the message says what to fix."""


class AnswerTooDeep(Exception):
    """predict()'s answer nests too deeply to be turned into JSON."""


# Loading ----------------------------------------------------------------------

# What the loader is doing, for the headline of a failure: "load() raised KeyError: 'x' (model.py:14)".
_phase = ["loading the bundle"]
PODIUM_FILES = ("model_server.py", "test_harness.py", "warm_runner.py")


def _inside(bundle: str, filename: str | None) -> str | None:
    if not filename:
        return None
    path = os.path.abspath(filename)
    if path.startswith(bundle.rstrip("/") + "/"):
        return os.path.relpath(path, bundle)
    return None


def describe(exc: BaseException, bundle: str) -> dict[str, Any]:
    """The exception as a member should see it: type, message, the traceback of their own code (Podium's
    frames and Python's import machinery folded away, paths relative to the bundle), and the innermost
    line of the bundle it passed through."""
    path = line = None
    if isinstance(exc, SyntaxError) and _inside(bundle, exc.filename):
        path, line = _inside(bundle, exc.filename), exc.lineno
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            where = _inside(bundle, frame.filename)
            if where is not None:
                path, line = where, frame.lineno
    return {"type": type(exc).__name__, "message": str(exc), "traceback": user_traceback(exc, bundle),
            "line": line, "path": path}


def user_traceback(exc: BaseException, bundle: str) -> str:
    """The traceback from the first frame of the user's bundle on (what called it is Podium's plumbing),
    without Python's import machinery; all of it when no frame is the bundle's (a library raised)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.basename(f.filename) not in PODIUM_FILES and not f.filename.startswith("<frozen")]
    first = next((n for n, f in enumerate(frames) if _inside(bundle, f.filename)), 0)
    frames = frames[first:]
    text = "".join(["Traceback (most recent call last):\n", *traceback.format_list(frames),
                    *traceback.format_exception_only(type(exc), exc)])
    text = text.replace(bundle.rstrip("/") + "/", "")
    return text.replace(sys.prefix, "<environment>") if sys.prefix != sys.base_prefix else text


def headline(exc: BaseException, bundle: str) -> str:
    """One line that leads with the user's error and where it happened."""
    info = describe(exc, bundle)
    where = f" ({info['path']}:{info['line']})" if info["path"] else ""
    message = f"{info['type']}: {info['message']}" if info["message"] else info["type"]
    return f"{_phase[0]} raised {message}{where}"


def _import_entrypoint(bundle: str, entrypoint: str) -> Any:
    """Import ``path/to/file.py:Name`` as module ``path.to.file`` (so relative imports work) and
    return ``Name``. The bundle root is first on ``sys.path``."""
    path, _, class_name = entrypoint.partition(":")
    if not class_name or not path.endswith(".py"):
        raise BundleError(f"entrypoint {entrypoint!r} must look like 'model.py:ClassName'")
    if not os.path.isfile(os.path.join(bundle, path)):
        raise BundleError(f"entrypoint file {path!r} is not in the bundle")
    module_name = path[: -len(".py")].replace("/", ".")
    _phase[0] = f"importing {path}"
    module = importlib.import_module(module_name)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise BundleError(f"{path} defines no class named {class_name!r}") from None


def _truss_kwargs(bundle: str, cls: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """Truss creates its Model with the keyword arguments its ``__init__`` accepts among ``config`` (the whole
    config.yaml, shipped as JSON in the manifest), ``data_dir``, ``secrets`` and ``environment``."""
    truss = manifest.get("truss") or {}
    offered = {
        "config": truss.get("config") or {},
        "data_dir": os.path.join(bundle, truss.get("data_dir") or "data"),
        "secrets": dict(truss.get("secrets") or {}),
        "environment": None,
    }
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return offered
    return {name: value for name, value in offered.items() if name in parameters}


class ModelLoop:
    """One event loop, in its own thread, for a model's ``async`` methods: an async ``load()`` and the
    calls after it share it (as in Truss's own server), so a client a model opens in ``load()`` stays usable
    in ``predict()``. Sync methods never touch it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
                threading.Thread(target=self.loop.run_forever, name="model-loop", daemon=True).start()
            return self.loop

    def resolve(self, value: Any) -> Any:
        """``value``, or what it resolves to when it is awaitable (an ``async def`` method's result)."""
        if inspect.isawaitable(value):
            return asyncio.run_coroutine_threadsafe(_awaited(value), self._running()).result()
        return value

    def next_chunk(self, stream: Any) -> tuple[bool, Any]:
        """(more, chunk) of a generator or async generator."""
        if hasattr(stream, "__anext__"):
            future = asyncio.run_coroutine_threadsafe(_anext(stream), self._running())
            return future.result()
        try:
            return True, next(stream)
        except StopIteration:
            return False, None


async def _awaited(value: Any) -> Any:
    return await value


async def _anext(stream: Any) -> tuple[bool, Any]:
    try:
        return True, await stream.__anext__()
    except StopAsyncIteration:
        return False, None


class Stream:
    """predict() returned a generator: its chunks go to the caller as they come (chunked transfer)."""

    def __init__(self, source: Any, loop: ModelLoop) -> None:
        self.source = source
        self.loop = loop

    release: Callable[[], None] | None = None  # frees the call's concurrency slot once the stream ends

    def next(self) -> tuple[bool, Any]:
        return self.loop.next_chunk(self.source)


def chunk_type(chunk: Any) -> str:
    if isinstance(chunk, bytes):
        return "application/octet-stream"
    if isinstance(chunk, str):
        return "text/plain; charset=utf-8"
    return "application/x-ndjson"


def encode_chunk(chunk: Any) -> bytes:
    """A streamed chunk on the wire: text as UTF-8, bytes as they are, anything else one JSON line."""
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode()
    return encode_answer(_to_jsonable(chunk)) + b"\n"


def _is_stream(value: Any) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def _to_jsonable(value: Any) -> Any:
    """numpy arrays and scalars, torch tensors -> plain lists and numbers. Raises AnswerTooDeep."""
    try:
        return _plain(value)
    except RecursionError:
        raise AnswerTooDeep from None


def _plain(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _non_finite(value: Any, path: str = "$") -> list[str]:
    """Where a value holds NaN or an infinity, as JSON paths (``$.predictions[3]``)."""
    if isinstance(value, float):
        return [] if value == value and value not in (float("inf"), float("-inf")) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{path}[{i}]")]
    return []


def _finite(value: Any) -> Any:
    """The value with every NaN and infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def encode_answer(result: Any) -> bytes:
    """predict()'s answer as strict JSON. Raises TypeError (not JSON), RecursionError (nested too deeply)."""
    try:
        return json.dumps(result, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:  # only raised for NaN and infinities
        paths = _non_finite(result)
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        log(f"predict() returned NaN or infinity at {shown}; sent as null")
        return json.dumps(_finite(result), separators=(",", ":"), allow_nan=False).encode()


def _inputs(body: Any) -> Any:
    if not isinstance(body, dict) or "inputs" not in body:
        raise ValueError('send a JSON object with an "inputs" list, e.g. {"inputs": [[1.0, 2.0]]}')
    return body["inputs"]


def load_predictor(bundle: str) -> Callable[[Any], Any]:
    """Load the bundle and return a function from the request's JSON to the answer's JSON."""
    manifest_path = os.path.join(bundle, "podium.json")
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise BundleError("the bundle has no podium.json") from None
    flavor = manifest.get("flavor")
    artifact = manifest.get("artifact")
    if bundle not in sys.path:
        sys.path.insert(0, bundle)  # the bundle's own modules (pickles may refer to them)
    artifact_path = os.path.join(bundle, artifact) if artifact else None
    if flavor == "sklearn":
        import joblib  # type: ignore[import-not-found]
        import numpy  # type: ignore[import-not-found]

        _phase[0] = f"joblib.load() of {artifact}"
        estimator = joblib.load(artifact_path)

        def predict_sklearn(body: Any) -> Any:
            return {"predictions": _to_jsonable(estimator.predict(numpy.asarray(_inputs(body))))}

        return predict_sklearn
    if flavor in ("torchscript", "torch_state"):
        import torch  # type: ignore[import-not-found]

        _phase[0] = f"loading {artifact}"
        if flavor == "torchscript":
            module = torch.jit.load(artifact_path, map_location="cpu")
        else:
            from safetensors.torch import load_model  # type: ignore[import-not-found]

            cls = _import_entrypoint(bundle, manifest.get("entrypoint") or "")
            module = cls(**(manifest.get("init_kwargs") or {}))
            load_model(module, artifact_path)  # strict, and restores tied weights
        module.eval()

        def predict_torch(body: Any) -> Any:
            with torch.no_grad():
                output = module(torch.as_tensor(_inputs(body), dtype=torch.float32))
            return {"predictions": _to_jsonable(output)}

        return predict_torch
    if flavor == "custom":
        return _custom_predictor(bundle, manifest)
    raise BundleError(f"unknown flavor {flavor!r} in podium.json")


def _custom_predictor(bundle: str, manifest: dict[str, Any]) -> Callable[[Any], Any]:
    """A class with ``load()`` and ``predict()``, called as Truss calls it: ``__init__(**kwargs)`` (for a
    Truss), ``load()``, then per call ``preprocess()`` -> ``predict()`` -> ``postprocess()`` when defined, each
    sync or ``async``. A ``predict()`` that returns a generator or async generator streams its chunks (its
    ``postprocess()`` is not applied, as in Truss)."""
    for path in reversed((manifest.get("truss") or {}).get("python_path") or []):
        sys.path.insert(1, os.path.join(bundle, path))  # after the bundle root: packages/, external dirs
    cls = _import_entrypoint(bundle, manifest.get("entrypoint") or "")
    kwargs = _truss_kwargs(bundle, cls, manifest) if manifest.get("truss") else {}
    _phase[0] = f"{getattr(cls, '__name__', 'the model')}()"
    instance = cls(**kwargs) if isinstance(cls, type) else cls
    loop = ModelLoop()
    if hasattr(instance, "load"):
        _phase[0] = "load()"
        loop.resolve(instance.load())
    if not callable(getattr(instance, "predict", None)):
        raise BundleError(f"{manifest.get('entrypoint')} has no predict() method")
    pre, post = getattr(instance, "preprocess", None), getattr(instance, "postprocess", None)

    def predict(body: Any) -> Any:
        value = loop.resolve(pre(body)) if callable(pre) else body
        value = loop.resolve(instance.predict(value))
        if _is_stream(value):
            return Stream(value, loop)
        if callable(post):
            value = loop.resolve(post(value))
        return _to_jsonable(value)

    return predict


# HTTP -------------------------------------------------------------------------


class Server:
    def __init__(self, bundle: str, concurrency: int, max_body: int, predict_timeout: float | None = None) -> None:
        self.bundle = bundle
        self.max_body = max_body
        self.predict_timeout = predict_timeout
        self.predictor: Callable[[Any], Any] | None = None
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="predict")
        self.concurrency = concurrency
        self.slots: asyncio.Semaphore | None = None  # made in the server's loop
        self.recycling = False
        self.active = 0  # calls taken and not yet answered
        self.exiting: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    async def load(self) -> None:
        started = time.monotonic()
        try:
            self.predictor = await asyncio.get_running_loop().run_in_executor(self.pool, load_predictor, self.bundle)
        except BaseException as exc:  # noqa: BLE001 - any failure to load ends the server
            # The user's own frames once, then the one line the deploy shows first (deploy.py reads it).
            sys.stderr.write(user_traceback(exc, self.bundle))
            log(f"load failed: {headline(exc, self.bundle)}")
            os._exit(EXIT_LOAD_FAILED)
        log(f"model loaded in {time.monotonic() - started:.2f}s; ready")
        self.loaded.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.active += 1  # a recycling server exits only once every call it took is answered
                try:
                    status, body, keep_alive = await self._respond(*request)
                    if isinstance(body, Stream):
                        keep_alive = await self._write_stream(writer, body) and keep_alive and not self.recycling
                    else:
                        keep_alive = keep_alive and not self.recycling
                        self._write(writer, status, body, keep_alive, not_run=body is NOT_RUN)
                    await writer.drain()
                finally:
                    self.active -= 1
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            return "BAD", "", {}, b""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return "BAD", "", {}, b""
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        body = b""
        if length is not None:
            if not length.isdigit():
                return "BAD", "", headers, b""
            if int(length) > self.max_body:
                return "TOO_LARGE", parts[1], headers, b""
            body = await reader.readexactly(int(length))
        elif "transfer-encoding" in headers:
            return "NO_LENGTH", parts[1], headers, b""
        return parts[0], parts[1], headers, body

    async def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bool]:
        keep_alive = headers.get("connection", "").lower() != "close"
        if method == "BAD":
            return 400, {"detail": "malformed HTTP request"}, False
        if method == "TOO_LARGE":
            return 413, {"detail": f"request body is larger than {self.max_body} bytes"}, False
        if method == "NO_LENGTH":
            return 411, {"detail": "send a Content-Length header"}, False
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return 200, {"status": "ok"}, keep_alive
        if path == "/ready":
            return (200, {"status": "ready"}, keep_alive) if self.loaded.is_set() else (
                503, {"status": "loading"}, keep_alive)
        if path != "/predict":
            return 404, {"detail": f"no route {path}"}, keep_alive
        if method != "POST":
            return 405, {"detail": "use POST"}, keep_alive
        if not self.loaded.is_set():
            return 503, {"detail": "the model is still loading"}, keep_alive
        if self.recycling:
            return 503, NOT_RUN, False
        try:
            payload = json.loads(body or b"null")
        except ValueError as exc:
            return 400, {"detail": f"the request body is not valid JSON: {exc}"}, keep_alive
        except RecursionError:
            return 400, {"detail": "the request body nests arrays and objects too deeply: keep it under "
                                   f"{sys.getrecursionlimit() - 100} levels"}, keep_alive
        return (*await self._predict(payload), keep_alive)

    async def _predict(self, payload: Any) -> tuple[int, Any]:
        """(status, answer): the answer is already-encoded JSON bytes on success, else a dict."""
        assert self.predictor is not None
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.concurrency)
        await self.slots.acquire()
        if self.recycling:  # it waited behind a predict() that hung: it never ran
            self.slots.release()
            return 503, NOT_RUN
        try:
            status, answer = await self._run_predict(payload)
        except BaseException:
            self.slots.release()
            raise
        if isinstance(answer, Stream):
            answer.release = self.slots.release  # the slot is held until the last chunk is sent
        else:
            self.slots.release()
        return status, answer

    async def _run_predict(self, payload: Any) -> tuple[int, Any]:
        assert self.predictor is not None
        running = asyncio.get_running_loop().run_in_executor(self.pool, self.predictor, payload)
        try:
            result = await asyncio.wait_for(running, self.predict_timeout)
        except asyncio.TimeoutError:  # noqa: UP041 - not TimeoutError before Python 3.11, and models bring their own
            self._recycle()
            return 504, {"detail": f"predict() did not return within {self.predict_timeout:g} s; "
                                   "the replica is being restarted"}
        except AnswerTooDeep:
            return 500, {"detail": "predict() returned a value nested too deeply to send as JSON"}
        except INPUT_ERRORS as exc:
            sys.stderr.write(user_traceback(exc, self.bundle))
            return 422, {"detail": f"predict() rejected the input: {type(exc).__name__}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - the user's code failed; report it, keep serving
            if isinstance(exc, RecursionError):
                traceback.print_exc(limit=-20)  # not 1,000 frames
            else:
                sys.stderr.write(user_traceback(exc, self.bundle))
            return 500, {"detail": f"predict() raised {type(exc).__name__}: {exc}"}
        if isinstance(result, Stream):
            return 200, result
        try:
            return 200, encode_answer(result)
        except (TypeError, ValueError) as exc:
            return 500, {"detail": f"predict() returned a value that is not JSON: {exc}"}
        except RecursionError:
            return 500, {"detail": "predict() returned a value nested too deeply to send as JSON"}

    async def _write_stream(self, writer: asyncio.StreamWriter, stream: Stream) -> bool:
        """Send a streamed answer with chunked transfer, each chunk as predict() yields it; returns whether
        the connection can be kept. A chunk that fails (the generator raised, or took longer than the
        predict timeout) ends the stream with a last line saying so."""
        loop = asyncio.get_running_loop()
        started = False
        try:
            while True:
                try:
                    more, chunk = await asyncio.wait_for(loop.run_in_executor(self.pool, stream.next),
                                                         self.predict_timeout)
                except asyncio.TimeoutError:  # noqa: UP041 - see _run_predict
                    self._recycle()
                    failure: str | None = f"predict() did not yield its next chunk within {self.predict_timeout:g} s"
                except Exception as exc:  # noqa: BLE001 - the user's generator failed; the caller hears why
                    sys.stderr.write(user_traceback(exc, self.bundle))
                    failure = f"predict() raised {type(exc).__name__}: {exc}"
                else:
                    failure = None
                if not started:
                    if failure is not None:
                        status = 504 if "did not yield" in failure else 500
                        self._write(writer, status, {"detail": failure}, False)
                        return False
                    writer.write((f"HTTP/1.1 200 OK\r\nContent-Type: {chunk_type(chunk) if more else 'text/plain'}"
                                  "\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n").encode())
                    started = True
                if failure is not None:
                    log(failure)
                    data = f"\n[podium] {failure}\n".encode()
                    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")
                    return False
                if not more:
                    writer.write(b"0\r\n\r\n")
                    return True
                data = encode_chunk(chunk)
                if data:
                    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    await writer.drain()
        finally:
            if stream.release is not None:
                stream.release()

    def _recycle(self) -> None:
        """A predict() hung: stop taking calls and exit soon, so the supervisor starts a fresh server."""
        if self.recycling:
            return
        self.recycling = True
        log(f"predict() did not return within {self.predict_timeout:g} s; restarting this replica "
            "(calls waiting for it are handed to another one)")
        self.exiting = asyncio.get_running_loop().create_task(self._exit_when_answered())

    async def _exit_when_answered(self) -> None:
        """Exit once the hung call has its 504 and every call waiting behind it its 503 (written and
        drained), or after ``RECYCLE_MAX_S``: a fixed delay lost those answers on a busy machine."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECYCLE_MAX_S
        await asyncio.sleep(0.02)
        while self.active and loop.time() < deadline:
            await asyncio.sleep(0.02)
        os._exit(EXIT_PREDICT_HUNG)

    @staticmethod
    def _write(writer: asyncio.StreamWriter, status: int, body: Any, keep_alive: bool, not_run: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"{NOT_RUN_HEADER if not_run else ''}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head.encode() + data)


async def serve(listen: str, server: Server) -> None:
    if listen.startswith("unix:"):
        path = listen[len("unix:"):]
        if os.path.exists(path):
            os.unlink(path)
        listener = await asyncio.start_unix_server(server.handle, path=path)
    elif listen.startswith("tcp:"):
        host, _, port = listen[len("tcp:"):].rpartition(":")
        listener = await asyncio.start_server(server.handle, host=host or "0.0.0.0", port=int(port))  # noqa: S104
    else:
        raise SystemExit(f"PODIUM_LISTEN={listen!r} must start with unix: or tcp:")
    log(f"listening on {listen}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loader = asyncio.create_task(server.load())
    async with listener:
        await stop.wait()
    loader.cancel()
    log("stopping")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Serve one Podium model bundle.")
    parser.add_argument("bundle", nargs="?", default=os.environ.get("PODIUM_BUNDLE", os.getcwd()))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("PODIUM_CONCURRENCY", "1")))
    parser.add_argument("--max-body", type=int, default=int(os.environ.get("PODIUM_MAX_BODY", str(10 << 20))))
    parser.add_argument("--predict-timeout", type=float, default=None)
    args = parser.parse_args(argv)
    listen = os.environ.get("PODIUM_LISTEN")
    if not listen:
        raise SystemExit("PODIUM_LISTEN is not set")
    os.chdir(args.bundle)  # models open their files by relative path
    server = Server(bundle=os.path.abspath(args.bundle), concurrency=max(1, args.concurrency),
                    max_body=args.max_body, predict_timeout=args.predict_timeout)
    asyncio.run(serve(listen, server))


if __name__ == "__main__":
    main()
