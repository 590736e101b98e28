"""Forms of the account pages. They parse and show errors; the rules live in services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .models import Membership

EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("never", "Never")]


class SignupForm(UserCreationForm):  # type: ignore[type-arg]
    email = forms.EmailField(
        label="E-mail", help_text="Team invitations sent to this address are waiting for you once you sign up."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autofocus=True)
        self.fields["email"].widget.attrs.update(autocomplete="email")
        for name in ("password1", "password2"):
            self.fields[name].widget.attrs.update(autocomplete="new-password")

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"].strip())
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError("An account with this e-mail address already exists.")
        return email


class TeamForm(forms.Form):
    prefix = "team"
    name = forms.CharField(
        label="New team", max_length=80, help_text="Shown to everyone in the team; the address is made from it."
    )


class InviteForm(forms.Form):
    who = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        help_text="Someone with an account joins at once; an e-mail without an account gets an invitation "
        "that is claimed when they sign up with it.",
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def target(self) -> dict[str, str]:
        """`{"username": …}` or `{"email": …}` for services.team_invite."""
        who = self.cleaned_data["who"].strip()
        if User.objects.filter(username__iexact=who).exists():
            return {"username": who}
        try:
            validate_email(who)
        except ValidationError:
            return {"username": who}
        return {"email": who}


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class TokenForm(forms.Form):
    prefix = "token"
    name = forms.CharField(
        label="New token name", max_length=80, help_text="Where it will be used, e.g. “laptop CLI” or “CI”."
    )
    expires = forms.ChoiceField(label="Expires after", choices=EXPIRY_CHOICES, initial="30")

    def expires_in_days(self) -> int | None:
        value = self.cleaned_data["expires"]
        return None if value == "never" else int(value)


class TeamDeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the team's address to confirm", max_length=80)

    def __init__(self, *args: Any, slug: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slug = slug
        self.fields["confirm"].help_text = f"Type {slug} exactly."

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value != self.slug:
            raise ValidationError(f"Type {self.slug} exactly.")
        return value
