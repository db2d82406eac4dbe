"""Sandbox artifacts over signed URLs, for executors whose sandboxes run on other hosts (Nomad).

``GET /sandbox-artifacts/<path>.tar.gz?expires=...&signature=...`` answers a
gzip tar of the directory ``<path>`` under the artifact root, when the
signature made by :func:`sandbox.signing.sign_url` is valid and unexpired. No
session is needed and nothing else is granted: any other request (bad or
expired signature, a path outside the root, a missing directory) gets the same
404, so the URL space reveals nothing.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from sandbox.signing import verify_signature


def artifact_root() -> Path:
    return Path(settings.PODIUM_ARTIFACT_ROOT).resolve()


@require_GET
def sandbox_artifact(request: HttpRequest, path: str) -> FileResponse:
    key = settings.PODIUM_ARTIFACT_SIGNING_KEY.encode()
    expires, signature = request.GET.get("expires", ""), request.GET.get("signature", "")
    if not key or not path.endswith(".tar.gz") or not verify_signature(path, expires, signature, key):
        raise Http404
    root = artifact_root()
    directory = (root / path[: -len(".tar.gz")]).resolve()
    if not directory.is_relative_to(root) or not directory.is_dir():
        raise Http404
    # Built in a spooled file so a slow client never holds a tar stream open on the directory.
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - FileResponse closes it
    with tarfile.open(fileobj=spool, mode="w:gz") as tar:
        tar.add(directory, arcname=".")
    spool.seek(0)
    return FileResponse(spool, content_type="application/gzip", as_attachment=True,
                        filename=directory.name + ".tar.gz")
