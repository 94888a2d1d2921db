"""A fake Stripe API over real HTTP, for the tests (the app reaches it through STRIPE_API_BASE).

It keeps state like Stripe does (customers, Checkout Sessions with their line items,
PaymentIntents, charges, disputes, Customer Portal sessions), parses Stripe's
form encoding (`metadata[purchase_id]=…`, `line_items[0][price_data][currency]=…`),
honours idempotency keys, and records every request it receives so tests can assert
on what was sent: the metadata on the session and on the PaymentIntent, the
`Idempotency-Key` and the `Stripe-Version` headers.

Tests move the world forward with `complete()`, `async_succeed()`, `refund()`,
`dispute()`, `close_dispute()`…; each returns the event Stripe would send, a snapshot
of the object at that moment, for the test to deliver (signed) to the webhook.

The "hosted Checkout page" (`GET /checkout/<session id>`) pays the session with a
card and redirects to its success URL, as a customer finishing Checkout would.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "sk_test_fake_mochi"
WEBHOOK_SECRET = "whsec_fake_mochi_endpoint_secret"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header: t=<unix>,v1=hex(HMAC-SHA256(secret, "t.payload"))."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket encoding back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]


@dataclass
class Fault:
    status: int
    path: str
    times: int


@dataclass
class State:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    portals: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeStripe:
    """`with FakeStripe() as stripe: settings.STRIPE_API_BASE = stripe.url ...`"""

    api_version = "2026-10-28.endive"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = State()
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeStripe:
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- Inspection ---------------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.state.requests if r.method == method and r.path == path]

    def fail_next(self, status: int, path: str = "/v1/", times: int = 1) -> None:
        """The next `times` requests whose path starts with `path` answer `status`."""
        with self.lock:
            self.state.faults.append(Fault(status, path, times))

    def session(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.state.sessions[session_id])

    def only_session(self) -> dict[str, Any]:
        with self.lock:
            (session,) = self.state.sessions.values()
            return copy.deepcopy(session)

    def charge_of(self, session_id: str) -> str:
        with self.lock:
            intent = self.state.intents[self.state.sessions[session_id]["payment_intent"]]
            return str(intent["latest_charge"])

    # --- Moving the world forward (each returns the event Stripe would send) -------------

    def complete(self, session_id: str, *, delayed: bool = False) -> dict[str, Any]:
        """The customer finishes Checkout: paid by card, or (`delayed`) by a bank debit
        whose outcome comes later."""
        with self.lock:
            session = self.state.sessions[session_id]
            metadata = (session.pop("_payment_intent_data", {}) or {}).get("metadata", {})
            intent = {
                "id": self._id("pi"),
                "object": "payment_intent",
                "amount": session["amount_total"],
                "currency": session["currency"],
                "customer": session["customer"],
                "metadata": dict(metadata),
                "status": "processing" if delayed else "succeeded",
                "latest_charge": None,
            }
            self.state.intents[intent["id"]] = intent
            session.update(status="complete", payment_intent=intent["id"])
            if not delayed:
                self._charge(session, intent)
            return self._event("checkout.session.completed", session)

    def async_succeed(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            session = self.state.sessions[session_id]
            intent = self.state.intents[session["payment_intent"]]
            intent["status"] = "succeeded"
            self._charge(session, intent)
            return self._event("checkout.session.async_payment_succeeded", session)

    def async_fail(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            session = self.state.sessions[session_id]
            self.state.intents[session["payment_intent"]]["status"] = "requires_payment_method"
            return self._event("checkout.session.async_payment_failed", session)

    def expire(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            session = self.state.sessions[session_id]
            session["status"] = "expired"
            return self._event("checkout.session.expired", session)

    def refund(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund `amount` more (all that is left by default)."""
        with self.lock:
            charge = self.state.charges[charge_id]
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else amount
            assert 0 < amount <= left, f"cannot refund {amount} of {left}"
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return self._event("charge.refunded", charge)

    def dispute(self, charge_id: str) -> dict[str, Any]:
        with self.lock:
            charge = self.state.charges[charge_id]
            charge["disputed"] = True
            dispute = {
                "id": self._id("dp"),
                "object": "dispute",
                "amount": charge["amount"] - charge["amount_refunded"],
                "currency": charge["currency"],
                "charge": charge_id,
                "payment_intent": charge["payment_intent"],
                "status": "needs_response",
                "reason": "fraudulent",
                "created": int(time.time()) + next(self._ids),
            }
            self.state.disputes[dispute["id"]] = dispute
            return self._event("charge.dispute.created", dispute)

    def close_dispute(self, dispute_id: str, *, won: bool) -> dict[str, Any]:
        with self.lock:
            dispute = self.state.disputes[dispute_id]
            dispute["status"] = "won" if won else "lost"
            return self._event("charge.dispute.closed", dispute)

    def _charge(self, session: dict[str, Any], intent: dict[str, Any]) -> None:
        charge = {
            "id": self._id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "payment_intent": intent["id"],
            "metadata": dict(intent["metadata"]),
            "paid": True,
            "refunded": False,
            "disputed": False,
            "status": "succeeded",
        }
        self.state.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        session["payment_status"] = "paid"

    def _event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": self._id("evt"),
            "object": "event",
            "api_version": self.api_version,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": type_,
            "data": {"object": _public(obj)},
        }
        self.state.events.append(event)
        return copy.deepcopy(event)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    # --- The API ------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, headers: dict[str, str], params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.state.requests.append(Recorded(method, path, headers, params))
            for fault in self.state.faults:
                if fault.times > 0 and path.startswith(fault.path):
                    fault.times -= 1
                    return fault.status, _error("api_error", "Injected fault.")
            if headers.get("authorization") != f"Bearer {API_KEY}":
                return 401, _error("invalid_request_error", "Invalid API Key provided.")
            key = headers.get("idempotency-key")
            if method == "POST" and key:
                seen = self.state.idempotent.get(key)
                if seen is not None:
                    if seen[0] != json.dumps(params, sort_keys=True):
                        return 400, _error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        )
                    return seen[1], copy.deepcopy(seen[2])
            status, body = self._route(method, path, params)
            if method == "POST" and key and status < 500:
                self.state.idempotent[key] = (
                    json.dumps(params, sort_keys=True),
                    status,
                    copy.deepcopy(body),
                )
            return status, body

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/customers":
            customer = {
                "id": self._id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            }
            self.state.customers[customer["id"]] = customer
            return 200, customer
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        if method == "GET" and parts[:3] == ["v1", "checkout", "sessions"] and len(parts) == 4:
            session = self.state.sessions.get(parts[3])
            if session is None:
                return _missing("checkout session", parts[3])
            body = _public(session)
            if "line_items" in (params.get("expand") or []):
                body["line_items"] = {
                    "object": "list",
                    "data": copy.deepcopy(session["_line_items"]),
                    "has_more": False,
                    "url": f"/v1/checkout/sessions/{session['id']}/line_items",
                }
            return 200, body
        if method == "POST" and path == "/v1/billing_portal/sessions":
            if params.get("customer") not in self.state.customers:
                return _missing("customer", str(params.get("customer")))
            portal = {
                "id": self._id("bps"),
                "object": "billing_portal.session",
                "customer": params["customer"],
                "return_url": params.get("return_url"),
            }
            portal["url"] = f"{self.url}/portal/{portal['id']}"
            self.state.portals[portal["id"]] = portal
            return 200, portal
        for name, store in (
            ("charges", self.state.charges),
            ("payment_intents", self.state.intents),
            ("disputes", self.state.disputes),
        ):
            if method == "GET" and parts[:2] == ["v1", name] and len(parts) == 3:
                found = store.get(parts[2])
                return (200, _public(found)) if found else _missing(name, parts[2])
        if method == "GET" and path == "/v1/disputes":
            charge = params.get("charge")
            listed = [_public(d) for d in self.state.disputes.values() if d["charge"] == charge]
            return 200, {"object": "list", "data": listed, "has_more": False, "url": path}
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({path}).")

    def _create_session(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for name in ("mode", "customer", "success_url", "cancel_url", "line_items"):
            if not params.get(name):
                return 400, _error("invalid_request_error", f"Missing required param: {name}.")
        if params["customer"] not in self.state.customers:
            return _missing("customer", params["customer"])
        items = []
        total = 0
        currency = ""
        for item in params["line_items"]:
            price = item["price_data"]
            quantity = int(item.get("quantity", 1))
            amount = int(price["unit_amount"]) * quantity
            total += amount
            currency = price["currency"]
            items.append(
                {
                    "id": self._id("li"),
                    "object": "item",
                    "description": price["product_data"]["name"],
                    "quantity": quantity,
                    "amount_total": amount,
                    "currency": currency,
                }
            )
        session = {
            "id": self._id("cs"),
            "object": "checkout.session",
            "mode": params["mode"],
            "customer": params["customer"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "amount_total": total,
            "currency": currency,
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "livemode": False,
            "_line_items": items,
            "_payment_intent_data": params.get("payment_intent_data", {}),
        }
        session["url"] = f"{self.url}/checkout/{session['id']}"
        self.state.sessions[session["id"]] = session
        return 200, _public(session)

    def hosted_page(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Stripe's hosted pages, reduced to what a customer's browser needs."""
        parts = path.strip("/").split("/")
        if parts[0] == "checkout" and len(parts) == 2 and parts[1] in self.state.sessions:
            with self.lock:  # paid once, however many tabs the customer has open
                session = self.state.sessions[parts[1]]
                if session["status"] == "open":
                    self.complete(session["id"])
            target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
            return 303, {"Location": target}, b""
        if parts[0] == "portal" and len(parts) == 2 and parts[1] in self.state.portals:
            portal = self.state.portals[parts[1]]
            html = (
                "<!DOCTYPE html><title>Customer portal</title><h1>Fake customer portal</h1>"
                f'<p><a href="{portal["return_url"]}">Return to Mochi Studio</a></p>'
            )
            return 200, {"Content-Type": "text/html"}, html.encode()
        return 404, {"Content-Type": "text/plain"}, b"not found"


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def _error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


def _missing(what: str, ident: str) -> tuple[int, dict[str, Any]]:
    return 404, _error("invalid_request_error", f"No such {what}: '{ident}'", "resource_missing")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Answer at once instead of waiting out the client's delayed ACK (40 ms a call).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not url.path.startswith("/v1/"):
            with self.fake.lock:
                status, headers, body = self.fake.hosted_page(url.path)
            self._send(status, headers, body)
            return
        params = parse_form(parse_qsl(url.query, keep_blank_values=True))
        self._json(*self.fake.answer("GET", url.path, self._headers(), params))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        params = parse_form(parse_qsl(raw, keep_blank_values=True))
        self._json(*self.fake.answer("POST", url.path, self._headers(), params))

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self._send(status, {"Content-Type": "application/json", "Request-Id": "req_fake"}, data)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
