"""Steps the browser journeys share."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail

PASSWORD = "a long browser password 7"


def last_link(to: str, pattern: str) -> str:
    for message in reversed(mail.outbox):
        if to in message.to:
            found = re.search(r"https?://\S*" + pattern + r"\S*", message.body)
            if found:
                return found.group(0)
    raise AssertionError(f"no email to {to} with {pattern}")


def sign_up_and_verify(page: Any, site_url: str, email: str) -> None:
    page.goto(site_url + "/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Verify Your Email Address").wait_for()
    page.goto(last_link(email, "/accounts/confirm-email/"))
    page.get_by_role("button", name="Confirm").click()


def sign_in(page: Any, site_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(site_url + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("main").get_by_role("button", name="Sign In").click()
    page.wait_for_load_state()


VIDEO_DURATION_JS = """v => new Promise(resolve => {
    if (v.readyState >= 1) resolve(v.duration);
    else v.addEventListener('loadedmetadata', () => resolve(v.duration));
})"""

PLAY_JS = """async v => {
    v.muted = true;
    await v.play();
    await new Promise(resolve => setTimeout(resolve, 600));
    return v.currentTime;
}"""
