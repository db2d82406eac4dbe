"""Podium's test-run harness: load a draft bundle, call predict() once, report.

Runs INSIDE a oneshot sandbox with the Python of the model's environment, next to
``model_server.py`` (whose ``load_predictor`` it reuses, so a test loads the code
exactly as a deployed version would). Standard library only.

Usage: ``python test_harness.py BUNDLE_DIR SAMPLE_INPUT_JSON_FILE``

It prints what the user's code prints, phase notes on stderr (``[podium] ...``),
and as its last line on stdout one result line: ``RESULT_PREFIX`` followed by JSON,
either ``{"ok": true, "load_ms", "predict_ms", "answer"}`` or
``{"ok": false, "step": "load"|"predict", "error": {"type", "message", "traceback",
"line", "path"}}`` where ``path``/``line`` name the innermost frame (or the syntax
error) inside the bundle. Exit code 0 when the test passed, 1 when it failed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

RESULT_PREFIX = "@@podium-test-result@@ "


def note(message: str) -> None:
    sys.stderr.write(f"[podium] {message}\n")
    sys.stderr.flush()


def report(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=repr) + "\n")
    sys.stdout.flush()


def collect(stream: Any, limit: int = 1000) -> dict[str, Any]:
    chunks = []
    while len(chunks) < limit:
        more, chunk = stream.next()
        if not more:
            break
        chunks.append(chunk.decode(errors="replace") if isinstance(chunk, bytes) else chunk)
    note(f"predict() streamed {len(chunks)} chunk{'s' if len(chunks) != 1 else ''}")
    return {"streamed": chunks}


def main(argv: list[str]) -> int:
    bundle, sample_path = os.path.abspath(argv[0]), argv[1]
    with open(sample_path) as handle:
        sample = json.load(handle)
    os.chdir(bundle)  # models open their files by relative path, as in the model server
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model_server import Stream, describe, load_predictor  # noqa: PLC0415 - beside this file in the sandbox

    note("loading the model")
    started = time.perf_counter()
    try:
        predict = load_predictor(bundle)
    except BaseException as exc:  # noqa: BLE001 - whatever the user's code raises is the result
        error = describe(exc, bundle)
        sys.stderr.write(error["traceback"])  # the user's own frames, once
        report({"ok": False, "step": "load", "error": error})
        return 1
    load_ms = (time.perf_counter() - started) * 1000
    note(f"loaded in {load_ms:.0f} ms; calling predict() on the sample input")
    started = time.perf_counter()
    try:
        answer = predict(sample)
        if isinstance(answer, Stream):  # a streaming predict(): the test shows its chunks, in order
            answer = collect(answer)
        json.dumps(answer)
    except BaseException as exc:  # noqa: BLE001
        error = describe(exc, bundle)
        sys.stderr.write(error["traceback"])
        report({"ok": False, "step": "predict", "error": error})
        return 1
    predict_ms = (time.perf_counter() - started) * 1000
    note(f"predict() answered in {predict_ms:.1f} ms")
    report({"ok": True, "load_ms": round(load_ms, 2), "predict_ms": round(predict_ms, 2), "answer": answer})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
