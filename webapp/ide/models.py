"""What the browser editor keeps on the server.

Terms:
- **source**: the shared, saved files of a model (:class:`ModelSource`), the base of
  the next deploy from the editor. Each save makes a new **revision** (1, 2, ...,
  kept in :class:`SourceRevision` so that a merge can read the base it started from).
  Files are text; binary files of an uploaded bundle (``artifacts/model.joblib``) are
  listed as read-only ``binary`` entries and read from the version they came from.
- **draft**: one member's unsaved edits of one model (:class:`Draft`), kept so that a
  reload or another browser loses nothing.
- **test run**: ``load()`` then ``predict()`` of some files on a sample input in a
  sandbox (:class:`TestRun`); never a deploy.
- **warm runner**: a long-running sandbox of one member that has imported the libraries of
  one environment and forks a child per test run (:class:`WarmRunner`, ``webapp/ide/warm.py``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.serving.models import Model
from webapp.workspaces.models import Workspace

RUN_STATES = ["queued", "building", "running", "passed", "failed"]
FINAL_RUN_STATES = ("passed", "failed")
FAILED_STEPS = ["environment", "start", "load", "predict", "limit"]


class ModelSource(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.OneToOneField(Model, on_delete=models.CASCADE, related_name="source")
    files = models.JSONField(default=dict, help_text="{relative path: text}")
    binary = models.JSONField(default=list, help_text="read-only paths taken from binary_version's bundle")
    binary_version = models.PositiveIntegerField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=0)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    saved_at = models.DateTimeField(default=timezone.now)
    sample_input = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.model.name} source r{self.revision}"


class SourceRevision(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="source_revisions")
    number = models.PositiveIntegerField()
    files = models.JSONField(default=dict)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    saved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="source_revision_unique")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.model.name} source r{self.number}"


class Draft(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    files = models.JSONField(default=dict)
    base_revision = models.PositiveIntegerField(default=0)
    sample_input = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "user"], name="one_draft_per_user_and_model")]

    def __str__(self) -> str:
        return f"{self.model.name} draft of user {self.user_id}"


class TestRun(models.Model):
    id = models.CharField(primary_key=True, max_length=32)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="test_runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, default="queued", choices=[(s, s) for s in RUN_STATES])
    files = models.JSONField(default=dict)
    sample_input = models.JSONField(null=True, blank=True)
    requirements = models.TextField(blank=True)
    output = models.JSONField(default=list, help_text="[{time, stream, text}] once the run is over")
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    failed_step = models.CharField(max_length=16, blank=True)
    environment_cached = models.BooleanField(null=True)
    warm = models.BooleanField(null=True, help_text="ran in a warm runner (libraries already imported)")
    sandbox = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model", "-created_at"])]

    __test__ = False  # not a pytest test class

    def __str__(self) -> str:
        return f"test run {self.id} of {self.model.name}"

    @property
    def done(self) -> bool:
        return self.status in FINAL_RUN_STATES


WARM_STATES = ["starting", "ready"]


class WarmRunner(models.Model):
    """One warm runner sandbox. ``key`` names what it can run (see ``webapp.ide.warm.key_for``); a row
    exists from the moment one process decides to start it, so two processes never start the same one.
    Deleting the row (retiring it, or by cascade) stops its sandbox."""

    id = models.CharField(primary_key=True, max_length=32)
    key = models.CharField(max_length=64, unique=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    environment = models.CharField(max_length=500)
    preload = models.JSONField(default=list)
    handle = models.JSONField(null=True, blank=True, help_text="the executor's handle once started")
    status = models.CharField(max_length=16, default="starting", choices=[(s, s) for s in WARM_STATES])
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["user", "-last_used_at"])]

    def __str__(self) -> str:
        return f"warm runner {self.id} ({self.status})"
