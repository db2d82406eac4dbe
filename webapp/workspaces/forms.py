"""Forms for the workspace pages. They parse input; the rules live in :mod:`actions`.

Forms only check shape (required, lengths, choices); everything Podium may
refuse for a reason (a taken slug, the last owner, a scope beyond a role)
comes back from the action as an :class:`ActionError` and is shown on the
form's field by :func:`add_action_error`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from webapp.workspaces.actions import ActionError
from webapp.workspaces.scopes import KEY_SCOPE_DESCRIPTIONS


def add_action_error(form: forms.Form, error: ActionError) -> None:
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


class WorkspaceCreateForm(forms.Form):
    name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"placeholder": "Acme ML", "autofocus": True}))
    slug = forms.CharField(
        label="URL name",
        max_length=48,
        required=False,
        help_text="Lowercase letters, digits and dashes. Leave empty to derive it from the name.",
        widget=forms.TextInput(attrs={"placeholder": "acme-ml"}),
    )


class RenameForm(forms.Form):
    name = forms.CharField(max_length=80)


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the workspace's URL name to confirm", max_length=48)


def _role_choices(roles: list[str]) -> list[tuple[str, str]]:
    return [(role, role.capitalize()) for role in roles]


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=(), help_text="What the new member may do; see Roles below.")
    email = forms.EmailField(
        required=False,
        help_text="Optional. When given, Podium also emails the link.",
        widget=forms.EmailInput(attrs={"placeholder": "name@example.com"}),
    )

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(roles)  # type: ignore[attr-defined]
        self.fields["role"].initial = "developer" if "developer" in roles else roles[-1]


EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"),
                  ("365", "In a year")]


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        help_text="Where the key is used, e.g. “CI deploys” or “billing service”.",
        widget=forms.TextInput(attrs={"placeholder": "CI deploys"}),
    )
    scopes = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple)
    expires_in = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, required=False)

    def __init__(self, *args: Any, scopes: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [  # type: ignore[attr-defined]
            (scope, KEY_SCOPE_DESCRIPTIONS[scope]) for scope in scopes
        ]
        if "read" in scopes:
            self.fields["scopes"].initial = ["read"]

    def expires_at(self) -> dt.datetime | None:
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + dt.timedelta(days=int(days)) if days else None


# object_type is the audited row's model name, lower-case (workspaces.actions.record).
OBJECT_TYPES = [("", "Any object"), ("workspace", "Workspace"), ("membership", "Member"),
                ("invitation", "Invitation"), ("apikey", "API key"), ("model", "Model"),
                ("modelversion", "Model version")]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, choices=())
    actor = forms.CharField(required=False, max_length=150, widget=forms.TextInput(attrs={"placeholder": "Anyone"}))
    object_type = forms.ChoiceField(label="Object", required=False, choices=OBJECT_TYPES)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, actions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups = sorted({a.split(".")[0] + "." for a in actions})
        choices = [("", "Any action")] + [(g, f"{g}*") for g in groups] + [(a, a) for a in sorted(actions)]
        self.fields["action"].choices = choices  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def params(self) -> dict[str, str]:
        """The filters as :func:`webapp.workspaces.api.audit_queryset` reads them (UTC day bounds)."""
        data = self.cleaned_data
        params = {k: data[k] for k in ("action", "actor", "object_type") if data.get(k)}
        if data.get("since"):
            params["since"] = f"{data['since'].isoformat()}T00:00:00Z"
        if data.get("until"):
            params["until"] = f"{(data['until'] + dt.timedelta(days=1)).isoformat()}T00:00:00Z"
        return params
