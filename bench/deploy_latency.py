"""From ``podium.deploy()`` of a small scikit-learn model to its first answered prediction.

Measures two cases against a running Podium (``make up``):

- cached: the model's environment already exists (the same requirements were deployed before);
- uncached: the requirements are new to this Podium (an extra pin makes a new environment), so the
  environment is built with uv first.

Usage:

    .venv/bin/python bench/deploy_latency.py            # reads URL and key from var/demo.json
    .venv/bin/python bench/deploy_latency.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from importlib import metadata
from pathlib import Path

import podium
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
ROW = [[5.1, 3.5, 1.4, 0.2]]


def one(name: str, model: object, requirements: list[str]) -> float:
    started = time.perf_counter()
    deployment = podium.deploy(model, name=name, requirements=requirements, progress=False)
    deployment.predict(ROW)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--key")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    demo = json.loads((ROOT / "var" / "demo.json").read_text()) if not args.key else {}
    podium.login(args.url or demo["url"], args.key or demo["api_key"])
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    base = [f"{p}=={metadata.version(p)}" for p in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")]
    one("bench-deploy", model, base)  # make sure the base environment exists
    cached = [one("bench-deploy", model, base) for _ in range(args.runs)]
    # A small pure-Python package with an always-true marker that differs each run: the requirements are
    # new, so each run builds a new environment (from uv's download cache, as a second deploy would).
    uncached = []
    for _ in range(args.runs):
        marker = uuid.uuid4().hex[:8]
        extra = f'six==1.16.0 ; platform_system != "never-{marker}"'
        uncached.append(one(f"bench-fresh-{marker}", model, [*base, extra]))
    print(f"\ndeploy -> first answered prediction, {args.runs} runs each (small scikit-learn model)")
    print(f"{'case':<34}{'median s':>10}{'min s':>10}{'max s':>10}")
    for label, values in (("environment cached", cached), ("environment built (uv)", uncached)):
        print(f"{label:<34}{statistics.median(values):>10.2f}{min(values):>10.2f}{max(values):>10.2f}")


if __name__ == "__main__":
    main()
