"""A new user's first minutes in the browser: sign up, land in the app, sign out, sign in again."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-demo-password-42"


def test_sign_up_lands_in_the_app_then_sign_out_and_sign_in_again(
    page: Page, screenshot: Callable[[Page, str], Path]
) -> None:
    page.goto("/signup/")
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Username").fill("erin")
    page.get_by_label("E-mail").fill("erin@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    screenshot(page, "signup")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_text("Welcome to ARPO Studio, erin.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("erin")
    assert User.objects.filter(username="erin", email="erin@example.com").exists()
    # The built front end is served and ran: it marks the document (a deferred module, so waited for: on a
    # loaded machine the check ran before the script had and failed although the bundle was fine).
    expect(page.locator("html")).to_have_class(re.compile(r"(^|\s)js(\s|$)"))
    screenshot(page, "home-after-signup")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("navigation", name="Account")).not_to_contain_text("erin")

    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "signin")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("erin")
    expect(page).not_to_have_url(re.compile(r"/login/"))


def test_a_wrong_password_shows_an_error_and_keeps_the_user_out(page: Page, alice: User) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.locator(".form-errors, .errorlist").first).to_be_visible()


def test_the_signed_in_fixture_opens_pages_as_alice(alice_page: Page) -> None:
    alice_page.goto("/")
    expect(alice_page.get_by_role("navigation", name="Account")).to_contain_text("alice")
