"""Starter templates for new models, read from ``templates_catalog/<id>/``.

Each template is a folder with ``template.json`` (``name``, ``description``,
``sample_input``, ``order``) and ``files/`` (what the new model's source holds).
Templates are data: nothing in them runs in the web process.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).resolve().parent / "templates_catalog"


@cache
def templates() -> dict[str, dict[str, Any]]:
    found = {}
    for folder in sorted(p for p in CATALOG.iterdir() if (p / "template.json").is_file()):
        meta = json.loads((folder / "template.json").read_text())
        files_dir = folder / "files"
        files = {
            path.relative_to(files_dir).as_posix(): path.read_text()
            for path in sorted(files_dir.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts
        }
        found[folder.name] = {"id": folder.name, **meta, "files": files}
    return dict(sorted(found.items(), key=lambda item: (item[1].get("order", 99), item[0])))


def template_ids() -> list[str]:
    """The templates' ids, in catalog order (the API schema's ``TemplateEnum``)."""
    return list(templates())


def listing() -> list[dict[str, Any]]:
    return [
        {"id": t["id"], "name": t["name"], "description": t["description"], "sample_input": t.get("sample_input"),
         "files": sorted(t["files"])}
        for t in templates().values()
    ]
