"""Account forms: sign up with an email address, plus Django's own forms styled by the templates."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User


class SignUpForm(UserCreationForm):
    """Username, email and a password checked by ``AUTH_PASSWORD_VALIDATORS``.

    The email is required and unique (case-insensitively): invitations and
    password resets are addressed to it.
    """

    email = forms.EmailField(
        max_length=254,
        help_text="Used for invitations and password resets.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].help_text = "Letters, digits and @ . + - _ (at most 150)."
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autofocus": True})

    def validate_password_for_user(self, user: Any, password_field_name: str = "password1") -> None:  # noqa: S107
        """A weak password is the password field's error, shown under it (Django puts it under the
        confirmation field)."""
        super().validate_password_for_user(user, password_field_name=password_field_name)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email address exists already. Sign in instead.")
        return email
