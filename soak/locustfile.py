"""The soak test's customers, for Locust (`python -m soak` starts it headless).

Web customers sign in through the real sign-in form, browse their gallery, a generation's
page and its live progress, the create and billing pages, submit through the create
form, cancel, delete, and buy credits (some finish Stripe's hosted Checkout page, some
leave it for the webhook). API clients submit with an `Idempotency-Key` and retry the
way a client whose connection dropped does (again, and at times twice at once), and
must get the same generation back; they poll, list, cancel and delete.

Expected refusals (402 for an empty wallet, 409 for canceling what already finished)
count as successes; anything else that is not 2xx or 3xx is an error in the report. A replay
that answers another generation than the first call is recorded as the failure
"idempotency: replay answered another generation", which the checks count.

Reads the accounts from the JSON file named by `SOAK_ACCOUNTS`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import uuid
from collections import deque
from typing import Any

import gevent
from locust import HttpUser, between, task

from soak import BASELINE, REPLAY_FAILED

ACCOUNTS: list[dict[str, Any]] = json.loads(open(os.environ["SOAK_ACCOUNTS"]).read())  # noqa: SIM115
WEB = itertools.cycle([a for a in ACCOUNTS if a["kind"] == "web"])
API = itertools.cycle([a for a in ACCOUNTS if a["kind"] == "api"])
IDS = re.compile(r"/generations/([0-9a-f-]{36})/")
SUBJECTS = (
    "a lighthouse in a storm",
    "a red fox in fresh snow",
    "koi in a moonlit pond",
    "a paper boat on a rainy street",
    "a hummingbird at a flower",
    "neon signs reflected in puddles",
)
PACKS = ("starter", "creator")


def params() -> dict[str, Any]:
    """Short clips, so a two-core machine keeps up with a hundred customers."""
    return {
        "prompt": f"{random.choice(SUBJECTS)}, take {random.randrange(10_000)}",
        "frames": random.choice((7, 13, 19, 25)),
        "steps": random.choice((10, 15, 20)),
        "fps": random.choice((12, 16, 24)),
    }


def client_address(n: int) -> str:
    """The address a load balancer appends to X-Forwarded-For for this customer."""
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256 + 1}"


class WebCustomer(HttpUser):
    weight = 4
    wait_time = between(3, 9)

    def on_start(self) -> None:
        self.account = next(WEB)
        self.slug = self.account["slug"]
        self.client.headers["X-Forwarded-For"] = client_address(self.account["n"])
        self.seen: deque[str] = deque(maxlen=40)
        self.client.get("/accounts/login/", name="/accounts/login/")
        with self.client.post(
            "/accounts/login/",
            data={"login": self.account["email"], "password": self.account["password"]},
            headers=self._csrf(),
            allow_redirects=False,
            catch_response=True,
            name="/accounts/login/ [POST]",
        ) as response:
            if response.status_code != 302:
                response.failure(f"sign-in answered {response.status_code}")

    def _csrf(self) -> dict[str, str]:
        return {
            "X-CSRFToken": self.client.cookies.get("csrftoken") or "",
            "Referer": self.host or "",
        }

    def _remember(self, html: str) -> None:
        for found in IDS.findall(html):
            if found not in self.seen:
                self.seen.append(found)

    def _one(self) -> str | None:
        return random.choice(self.seen) if self.seen else None

    @task(10)
    def gallery(self) -> None:
        response = self.client.get(f"/w/{self.slug}/generations/", name="/w/[slug]/generations/")
        self._remember(response.text)

    @task(6)
    def watch(self) -> None:
        generation = self._one()
        if generation is None:
            return
        base = f"/w/{self.slug}/generations/{generation}/"
        self.client.get(base, name="/w/[slug]/generations/[id]/")
        self.client.get(base + "live/", name="/w/[slug]/generations/[id]/live/")

    @task(4)
    def create_page(self) -> None:
        self.client.get(f"/w/{self.slug}/", name="/w/[slug]/")

    @task(2)
    def pricing(self) -> None:
        """The baseline: a page that reads nothing, served by the same processes under the
        same load, that the budget for response times is measured against."""
        self.client.get("/pricing/", name=BASELINE)

    @task(2)
    def billing(self) -> None:
        self.client.get(f"/w/{self.slug}/billing/", name="/w/[slug]/billing/")

    @task(2)
    def submit(self) -> None:
        with self.client.post(
            f"/w/{self.slug}/generate/",
            data=params(),
            headers=self._csrf(),
            allow_redirects=False,
            catch_response=True,
            name="/w/[slug]/generate/",
        ) as response:
            if response.status_code == 302:
                self._remember(response.headers["Location"])
            elif response.status_code == 402:
                response.success()  # the wallet is empty: the page says so
            else:
                response.failure(f"submit answered {response.status_code}")

    @task(1)
    def cancel(self) -> None:
        if generation := self._one():
            self._post_expecting_redirect(
                f"/w/{self.slug}/generations/{generation}/cancel/",
                "/w/[slug]/generations/[id]/cancel/",
            )

    @task(1)
    def delete(self) -> None:
        if generation := self._one():
            self.seen.remove(generation)
            self._post_expecting_redirect(
                f"/w/{self.slug}/generations/{generation}/delete/",
                "/w/[slug]/generations/[id]/delete/",
            )

    @task(1)
    def buy(self) -> None:
        with self.client.post(
            f"/w/{self.slug}/billing/checkout/",
            data={"pack": random.choice(PACKS)},
            headers=self._csrf(),
            allow_redirects=False,
            catch_response=True,
            name="/w/[slug]/billing/checkout/",
        ) as response:
            if response.status_code not in (302, 303):  # 303: see Stripe's Checkout page
                response.failure(f"checkout answered {response.status_code}")
                return
            checkout = response.headers["Location"]
        if random.random() < 0.5:
            # Stripe's hosted page pays and sends the customer back to the success page.
            self.client.get(checkout, name="stripe checkout -> /w/[slug]/billing/success/")

    def _post_expecting_redirect(self, path: str, name: str) -> None:
        with self.client.post(
            path, headers=self._csrf(), allow_redirects=False, catch_response=True, name=name
        ) as response:
            if response.status_code != 302:
                response.failure(f"answered {response.status_code}")


class ApiClient(HttpUser):
    weight = 1
    wait_time = between(2, 6)

    def on_start(self) -> None:
        account = next(API)
        self.client.headers["Authorization"] = f"Bearer {account['api_key']}"
        self.mine: deque[str] = deque(maxlen=40)

    def _one(self) -> str | None:
        return random.choice(self.mine) if self.mine else None

    def _submit(self, body: dict[str, Any], key: str, name: str) -> str | None:
        """One POST; the generation's id when it was accepted, "" for an expected refusal."""
        for _ in range(5):
            with self.client.post(
                "/api/v1/generations",
                json=body,
                headers={"Idempotency-Key": key},
                catch_response=True,
                name=name,
            ) as response:
                if response.status_code == 409:  # the first call is still under way
                    response.success()
                    gevent.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code in (200, 201, 202):
                    return str(response.json()["id"])
                if response.status_code == 402:
                    response.success()
                    return ""
                response.failure(f"submit answered {response.status_code}: {response.text[:200]}")
                return None
        return None

    @task(2)
    def submit(self) -> None:
        body, key = params(), str(uuid.uuid4())
        draw = random.random()
        if draw < 0.2:
            # A client that fires its retry before the first call has answered.
            first, second = (
                gevent.spawn(self._submit, body, key, "/api/v1/generations"),
                (gevent.spawn(self._submit, body, key, "/api/v1/generations [concurrent retry]")),
            )
            gevent.joinall([first, second])
            answers = [first.value, second.value]
        else:
            answers = [self._submit(body, key, "/api/v1/generations")]
            if draw < 0.5:  # the answer was lost on the way: send it again
                answers.append(self._submit(body, key, "/api/v1/generations [retry]"))
        ids = {a for a in answers if a}
        if len(ids) > 1:
            self.environment.events.request.fire(
                request_type="CHECK",
                name=REPLAY_FAILED,
                response_time=0,
                response_length=0,
                exception=AssertionError(f"{key}: {sorted(ids)}"),
            )
        self.mine.extend(ids)

    @task(5)
    def poll(self) -> None:
        if generation := self._one():
            self.client.get(f"/api/v1/generations/{generation}", name="/api/v1/generations/[id]")

    @task(2)
    def list(self) -> None:
        self.client.get("/api/v1/generations?limit=20", name="/api/v1/generations?limit=20")

    @task(1)
    def cancel(self) -> None:
        if generation := self._one():
            with self.client.post(
                f"/api/v1/generations/{generation}/cancel",
                catch_response=True,
                name="/api/v1/generations/[id]/cancel",
            ) as response:
                if response.status_code in (200, 202, 409):
                    response.success()

    @task(1)
    def delete(self) -> None:
        if generation := self._one():
            self.mine.remove(generation)
            self.client.delete(
                f"/api/v1/generations/{generation}", name="/api/v1/generations/[id] [DELETE]"
            )
