"""Sandbox artifacts over signed URLs, for executors whose sandboxes run on other hosts (Nomad).

``GET /sandbox-artifacts/<path>.tar.gz?expires=...&signature=...`` answers a
gzip tar of the directory ``<path>`` under the artifact root (or, when
``<path>.tar.gz`` is itself a file there, an environment archive a build job
uploaded, that file), when the signature made by
:func:`sandbox.signing.sign_url` is valid and unexpired.

``PUT`` on the same path, with a signature made for ``PUT``, is how a Nomad
build job hands back the environment it built: the body (a gzip tar, at most
``PODIUM_ENV_ARCHIVE_MAX_MIB``) is stored as ``<path>.tar.gz`` under the root,
written once (an archive that exists is never replaced: 409), beside a
directory that must already exist (the builder made it when it started the
job). The archive is checked before it is kept: a gzip tar of regular files
and directories only, every name relative and inside.

No session is needed and nothing else is granted: any other request (bad or
expired signature, a path outside the root, a missing directory) gets the same
404, so the URL space reveals nothing.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox.signing import verify_signature

CHUNK = 1 << 20


def artifact_root() -> Path:
    return Path(settings.PODIUM_ARTIFACT_ROOT).resolve()


@csrf_exempt  # a signed URL is the whole credential; there is no session to forge
@require_http_methods(["GET", "HEAD", "PUT"])
def sandbox_artifact(request: HttpRequest, path: str) -> HttpResponseBase:
    method = "PUT" if request.method == "PUT" else "GET"
    key = settings.PODIUM_ARTIFACT_SIGNING_KEY.encode()
    expires, signature = request.GET.get("expires", ""), request.GET.get("signature", "")
    if not key or not path.endswith(".tar.gz") or not verify_signature(path, expires, signature, key,
                                                                        method=method):
        raise Http404
    root = artifact_root()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise Http404
    if method == "PUT":
        return _receive_archive(request, target)
    if target.is_file():
        return FileResponse(open(target, "rb"), content_type="application/gzip", as_attachment=True,  # noqa: SIM115
                            filename=target.name)
    directory = target.with_name(target.name[: -len(".tar.gz")])
    if not directory.is_dir():
        raise Http404
    # Built in a spooled file so a slow client never holds a tar stream open on the directory.
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - FileResponse closes it
    with tarfile.open(fileobj=spool, mode="w:gz") as tar:
        tar.add(directory, arcname=".")
    spool.seek(0)
    return FileResponse(spool, content_type="application/gzip", as_attachment=True,
                        filename=directory.name + ".tar.gz")


def _receive_archive(request: HttpRequest, target: Path) -> HttpResponse:
    """Store an uploaded environment archive at ``target``, once, whole, and only if it is a safe tar."""
    if not target.with_name(target.name[: -len(".tar.gz")]).is_dir():
        raise Http404
    if target.exists():
        return HttpResponse("this archive was already uploaded\n", status=409, content_type="text/plain")
    limit = settings.PODIUM_ENV_ARCHIVE_MAX_MIB << 20
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    too_big = HttpResponse(f"the archive is larger than {settings.PODIUM_ENV_ARCHIVE_MAX_MIB} MiB "
                           "(PODIUM_ENV_ARCHIVE_MAX_MIB)\n", status=413, content_type="text/plain")
    if declared > limit:
        return too_big
    fd, partial = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
    try:
        received = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := request.read(CHUNK):
                received += len(chunk)
                if received > limit:
                    return too_big
                out.write(chunk)
        problem = _archive_problem(Path(partial))
        if problem:
            return HttpResponse(f"not an environment archive: {problem}\n", status=400, content_type="text/plain")
        os.chmod(partial, 0o444)
        try:
            os.link(partial, target)  # fails if another upload won the race: written once
        except FileExistsError:
            return HttpResponse("this archive was already uploaded\n", status=409, content_type="text/plain")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return HttpResponse(status=201)


def _archive_problem(path: Path) -> str | None:
    """Why ``path`` is not an archive Podium would hand to a sandbox (None: it is fine)."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name.startswith("/") or ".." in Path(name).parts:
                    return f"{member.name!r} is outside the environment"
                if not (member.isfile() or member.isdir()):
                    return f"{member.name!r} is not a regular file or a directory"
    except (tarfile.TarError, OSError, EOFError) as exc:
        return str(exc) or type(exc).__name__
    return None
