"""Stripe's side of the soak test: what customers do on Stripe's pages and what Stripe
sends back.

Every few seconds it finishes the Checkout Sessions customers left open (paid by card,
paid later by bank debit that succeeds or fails, or abandoned until they expire),
refunds part or all of some payments, opens and closes disputes, and delivers every
event Stripe would send to `/stripe/webhook/`, signed, in shuffled order, a share of
them twice, with now and then a forged one that must be refused.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from typing import Any

import requests

from tests.support.fake_stripe import FakeStripe, sign

logger = logging.getLogger("soak")


class StripeDriver:
    def __init__(self, fake: FakeStripe, webhook_url: str, *, seed: int = 0) -> None:
        self.fake, self.webhook_url = fake, webhook_url
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self._first_seen: dict[str, float] = {}
        self._pending_async: list[str] = []
        self._delivered = 0  # events of fake.state.events taken so far
        self._outbox: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StripeDriver:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop moving the world; deliver what Stripe still owes (duplicates included)."""
        self._stop.set()
        self._thread.join(timeout=120)
        self._collect()
        while self._outbox:  # the second deliveries are never repeated: this ends
            self._deliver_some()

    def _run(self) -> None:
        while not self._stop.wait(self.random.uniform(1.5, 4)):
            try:
                self.step()
            except Exception:  # keep driving: the checks will show what went wrong
                logger.exception("the Stripe driver's step failed")
                self.counts["driver errors"] += 1

    def step(self) -> None:
        now = time.time()
        with self.fake.lock:
            sessions = [dict(s) for s in self.fake.state.sessions.values()]
            charges = [dict(c) for c in self.fake.state.charges.values()]
            disputes = [dict(d) for d in self.fake.state.disputes.values()]
        for session in sessions:
            first = self._first_seen.setdefault(session["id"], now)
            if session["status"] == "open" and now - first > 4:
                self._finish(session["id"])
        for session_id in list(self._pending_async):
            if self.random.random() < 0.5:
                self._pending_async.remove(session_id)
                if self.random.random() < 0.8:
                    self.fake.async_succeed(session_id)
                    self.counts["bank debits succeeded"] += 1
                else:
                    self.fake.async_fail(session_id)
                    self.counts["bank debits failed"] += 1
        paid = [c for c in charges if not c["disputed"] and c["amount_refunded"] < c["amount"]]
        if paid and self.random.random() < 0.15:
            charge = self.random.choice(paid)
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if self.random.random() < 0.4 else max(1, left // 2)
            self.fake.refund(charge["id"], amount)
            self.counts["refunds"] += 1
        if paid and self.random.random() < 0.06:
            self.fake.dispute(self.random.choice(paid)["id"])
            self.counts["disputes opened"] += 1
        open_disputes = [d for d in disputes if d["status"] == "needs_response"]
        if open_disputes and self.random.random() < 0.3:
            dispute = self.random.choice(open_disputes)
            won = self.random.random() < 0.5
            self.fake.close_dispute(dispute["id"], won=won)
            self.counts["disputes won" if won else "disputes lost"] += 1
        self._collect()
        self._deliver_some()

    def _finish(self, session_id: str) -> None:
        with self.fake.lock:  # the customer may have paid on the hosted page meanwhile
            if self.fake.state.sessions[session_id]["status"] != "open":
                return
            self._finish_open(session_id)

    def _finish_open(self, session_id: str) -> None:
        draw = self.random.random()
        if draw < 0.7:
            self.fake.complete(session_id)
            self.counts["checkouts paid by card"] += 1
        elif draw < 0.85:
            self.fake.complete(session_id, delayed=True)
            self._pending_async.append(session_id)
            self.counts["checkouts paid by bank debit"] += 1
        else:
            self.fake.expire(session_id)
            self.counts["checkouts abandoned"] += 1

    def _collect(self) -> None:
        with self.fake.lock:
            new = self.fake.state.events[self._delivered :]
            self._delivered += len(new)
        self._outbox.extend(json.loads(json.dumps(event)) for event in new)

    def _deliver_some(self) -> None:
        """Deliver the outbox in shuffled order; a quarter of the events stay for a second
        delivery later, as Stripe's retries do."""
        batch, self._outbox = self._outbox, []
        self.random.shuffle(batch)
        for event in batch:
            self._post(event)
            if not event.get("_again") and self.random.random() < 0.25:
                self._outbox.append({**event, "_again": True})
        if self.random.random() < 0.2:
            self._forged()

    def _post(self, event: dict[str, Any]) -> None:
        again = event.pop("_again", False)
        payload = json.dumps(event).encode()
        for attempt in range(5):
            try:
                response = requests.post(
                    self.webhook_url,
                    data=payload,
                    headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
                    timeout=30,
                )
            except requests.RequestException:
                self.counts["deliveries without an answer (retried)"] += 1
                time.sleep(1 + attempt)
                continue
            if response.status_code == 200:
                self.counts["duplicate deliveries" if again else "events delivered"] += 1
                return
            self.counts[f"deliveries answered {response.status_code} (retried)"] += 1
            time.sleep(1 + attempt)
        self.counts["events never accepted"] += 1

    def _forged(self) -> None:
        payload = json.dumps(
            {"id": f"evt_forged_{self.random.randrange(10**9)}", "type": "charge.refunded"}
        ).encode()
        response = requests.post(
            self.webhook_url,
            data=payload,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(payload, "whsec_not_the_endpoint_secret"),
            },
            timeout=30,
        )
        self.counts[
            "forged deliveries refused"
            if response.status_code == 400
            else f"forged deliveries answered {response.status_code}"
        ] += 1
