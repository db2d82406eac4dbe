"""The ``podium`` command line.

Exit codes: 0 success; 1 the server refused, a deployment failed, or the server could not be reached;
2 the command cannot run as given (bad arguments or JSON, no URL or key, a directory that is not a model);
130 interrupted. Errors are one line on stderr (``podium: error: ...``); ``PODIUM_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from podium._version import __version__
from podium.client import Client
from podium.deploy import Progress, deploy, format_log_line
from podium.errors import (
    APIError,
    BundleError,
    ConfigurationError,
    DeploymentFailed,
    PodiumError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(PodiumError):
    """The command line is wrong in a way argparse cannot see (bad JSON, a missing file)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium",
        description="Deploy models to Podium and call them. Configure with PODIUM_URL and PODIUM_API_KEY.",
    )
    parser.add_argument("--version", action="version", version=f"podium {__version__}")
    parser.add_argument("--url", help="Podium's URL (default: $PODIUM_URL)")
    parser.add_argument("--workspace", help="workspace slug (default: the API key's workspace)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("deploy", help="package a directory and deploy it as a new version")
    p.add_argument("directory", metavar="DIR", help="model.py + requirements.txt, or a Truss (config.yaml + model/)")
    p.add_argument("--name", help="model name (default: podium.json's name, Truss's model_name, or DIR's name)")
    p.add_argument("--description", default="")
    p.add_argument("--cpu", type=float, help="CPU cores per replica (default 1)")
    p.add_argument("--memory", type=int, help="memory per replica in MiB (default 1024)")
    p.add_argument("--gpu", type=int, help="GPUs per replica (default 0)")
    p.add_argument("--replicas", type=int, help="replicas (default 1)")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="return once uploaded")
    p.add_argument("--no-promote", dest="promote", action="store_false",
                   help="leave the production alias where it is once this version is ready")

    p = sub.add_parser("predict", help="call a model with a JSON body and print the answer")
    p.add_argument("name", metavar="NAME")
    p.add_argument("body", metavar="JSON", help="the request body: JSON text, @file.json, or - for stdin")
    p.add_argument("--version", type=int, help="call this version (default: the production alias)")

    p = sub.add_parser("logs", help="print a version's logs")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", type=int, help="default: the newest version")
    p.add_argument("--tail", type=int, default=200, help="how many lines (default 200)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until Ctrl-C")
    p.add_argument("--build", dest="source", action="store_const", const="build", default="runtime",
                   help="the environment build's log instead of the model server's")

    p = sub.add_parser("versions", help="list a model's versions")
    p.add_argument("name", metavar="NAME")

    p = sub.add_parser("promote", help="point an alias (production by default) at a version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", type=int)
    p.add_argument("--alias", default="production")

    p = sub.add_parser("rollback", help="move an alias (production by default) back to its previous routing")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--alias", default="production")

    p = sub.add_parser("delete", help="delete a model (every version and its calls), or one version of it")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", type=int, help="delete only this version (it must take no traffic)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    return parser


def _read_body(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            with open(text[1:]) as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {text[1:]}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the request body is not valid JSON: {exc}") from exc


def _newest(client: Client, name: str) -> int:
    numbers = [int(v["number"]) for v in client.versions(name)]
    if not numbers:
        raise PodiumError(f"model {name} has no versions yet")
    return max(numbers)


def follow_logs(
    client: Client, name: str, version: int, *, tail: int, source: str = "runtime", interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the last lines, then new ones as they come, until interrupted.

    The logs endpoint answers the last ``tail`` lines; lines already printed are skipped by their content.
    """
    printed: list[tuple[Any, Any, Any]] = []
    seen: set[tuple[Any, Any, Any]] = set()
    while True:
        for line in client.logs(name, version, tail=tail, source=source):
            key = (line.get("time") or line.get("ts"), line.get("stream"), line.get("text"))
            if key not in seen:
                seen.add(key)
                printed.append(key)
                print(format_log_line(line), flush=True)
        if len(printed) > 10 * tail:  # forget what can no longer come back in a tail
            for key in printed[: len(printed) - 2 * tail]:
                seen.discard(key)
            del printed[: len(printed) - 2 * tail]
        sleep(interval)


def describe_routes(alias: dict[str, Any]) -> str:
    """``v3`` for one route, ``v3 (90%), v4 (10%)`` for a traffic split."""
    routes = alias.get("routes") or []
    if len(routes) == 1:
        return f"v{routes[0]['version']}"
    return ", ".join(f"v{r['version']} ({r['weight']}%)" for r in routes) or "nothing"


def _aliases_by_version(model: dict[str, Any]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for alias in model.get("aliases") or []:
        routes = alias.get("routes") or []
        for route in routes:
            weight = f" {route['weight']}%" if len(routes) > 1 else ""
            found.setdefault(int(route["version"]), []).append(f"{alias['name']}{weight}")
    return found


def _print_versions(versions: list[dict[str, Any]], model: dict[str, Any]) -> None:
    aliases = _aliases_by_version(model)
    rows = [("VERSION", "STATUS", "ALIASES", "CREATED", "DESCRIPTION")]
    for v in sorted(versions, key=lambda v: int(v.get("number", 0)), reverse=True):
        rows.append((
            str(v.get("number", "")), str(v.get("status", "")), ",".join(aliases.get(int(v.get("number", 0)), [])),
            str(v.get("created_at") or "")[:19].replace("T", " "), str(v.get("description") or ""),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])


def _run(args: argparse.Namespace, client: Client) -> int:
    if args.command == "deploy":
        handle = deploy(
            args.directory, args.name, description=args.description, cpu=args.cpu, memory=args.memory,
            gpu=args.gpu, replicas=args.replicas, wait=args.wait, promote=args.promote, client=client,
        )
        print(handle.url)
    elif args.command == "predict":
        body = _read_body(args.body)
        print(json.dumps(client.predict(args.name, body, version=args.version), indent=2))
    elif args.command == "logs":
        version = args.version or _newest(client, args.name)
        if args.follow:
            follow_logs(client, args.name, version, tail=args.tail, source=args.source)
        for line in client.logs(args.name, version, tail=args.tail, source=args.source):
            print(format_log_line(line))
    elif args.command == "versions":
        versions = client.versions(args.name)
        if not versions:
            print(f"model {args.name} has no versions", file=sys.stderr)
        else:
            _print_versions(versions, client.model(args.name))
    elif args.command in ("promote", "rollback"):
        if args.command == "promote":
            result = client.promote(args.name, args.version, args.alias)
        else:
            result = client.rollback(args.name, args.alias)
        print(f"{args.name}: {result.get('name', args.alias)} -> {describe_routes(result)}")
    elif args.command == "delete":
        return _delete(args, client)
    return EXIT_OK


def _delete(args: argparse.Namespace, client: Client) -> int:
    what = f"version {args.version} of {args.name}" if args.version else f"{args.name} and every version of it"
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting {what} cannot be undone: pass --yes to confirm")
        typed = input(f"Delete {what}? This cannot be undone. Type the model's name to confirm: ")
        if typed.strip() != args.name:
            print("podium: not deleted", file=sys.stderr)
            return EXIT_USAGE
    if args.version:
        client.delete_version(args.name, args.version)
    else:
        client.delete_model(args.name)
    print(f"deleted {what}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Run the command line; returns the exit code. ``transport`` is for tests (an httpx.MockTransport)."""
    args = _parser().parse_args(argv)
    try:
        with Client(args.url, workspace=args.workspace, transport=transport) as client:
            return _run(args, client)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_OK if getattr(args, "follow", False) else EXIT_INTERRUPTED
    except PodiumError as exc:
        if os.environ.get("PODIUM_DEBUG"):
            traceback.print_exc()
        print(f"podium: error: {exc}", file=sys.stderr)
        if isinstance(exc, APIError) and exc.status == 401:
            print("podium: check PODIUM_API_KEY (keys are shown once, on the workspace's API keys page)",
                  file=sys.stderr)
        usage = isinstance(exc, (UsageError, ConfigurationError, BundleError)) and not isinstance(exc, DeploymentFailed)
        return EXIT_USAGE if usage else EXIT_FAILED


__all__ = ["Progress", "follow_logs", "main"]
