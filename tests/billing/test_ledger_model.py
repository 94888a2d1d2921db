"""Hypothesis drives the ledger with random sequences of operations over three wallets and
compares it after every step with a plain-Python model; the audit must hold throughout."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, assume
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from accounts.models import Workspace
from billing import wallets
from billing.audit import run_audit
from billing.ledger import HoldAlreadyResolved, InsufficientCredits, TransferConflict
from billing.models import Code
from tests.conftest import make_user


@dataclass
class ModelWallet:
    available: int = 0
    held: int = 0
    owed: int = 0

    def receive(self, amount: int) -> None:
        """Credits arriving pay what is owed first."""
        self.available += amount
        settle = min(self.owed, self.available)
        self.owed -= settle
        self.available -= settle


@dataclass
class ModelHold:
    wallet: int
    key: str
    amount: int
    resolved: str | None = None
    captured: int = 0


@dataclass
class Call:
    """A call that succeeded, to replay later: it must change nothing."""

    action: Any
    result_ids: list[Any] = field(default_factory=list)


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.savepoint_create()
        self.serial = 0
        owner = make_user(f"model{id(self)}@example.com")
        self.workspaces = [
            Workspace.objects.create_team(name=f"W{i}", owner=owner) for i in range(3)
        ]
        self.model = [ModelWallet() for _ in self.workspaces]
        self.calls: list[Call] = []
        self.grants: list[tuple[int, str, int]] = []

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)

    def _key(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def _remember(self, action: Any, transfers: Any) -> None:
        items = transfers if isinstance(transfers, list) else [transfers]
        self.calls.append(Call(action, sorted(str(t.pk) for t in items)))

    @rule(w=st.integers(0, 2), amount=st.integers(1, 500))
    def grant(self, w: int, amount: int) -> None:
        key = self._key("grant")

        def action() -> Any:
            return wallets.grant(self.workspaces[w], amount, key=key)

        self._remember(action, action())
        self.grants.append((w, key, amount))
        self.model[w].receive(amount)

    @rule(target=holds, w=st.integers(0, 2), amount=st.integers(1, 300))
    def hold(self, w: int, amount: int) -> Any:
        key = self._key("hold")
        wallet = self.model[w]
        try:
            transfer = wallets.hold(self.workspaces[w], amount, key=key)
        except wallets.WalletSuspended:
            assert wallet.owed > 0
            return ModelHold(w, key, amount, resolved="never held")
        except InsufficientCredits:
            assert wallet.owed == 0
            assert amount > wallet.available
            return ModelHold(w, key, amount, resolved="never held")
        assert wallet.owed == 0
        assert amount <= wallet.available
        wallet.available -= amount
        wallet.held += amount
        self._remember(lambda: wallets.hold(self.workspaces[w], amount, key=key), transfer)
        return ModelHold(w, key, amount)

    def _resolve(self, hold: ModelHold, how: str, fraction: float = 1.0) -> None:
        assume(hold.resolved != "never held")
        hold_id = wallets.hold_id(hold.key)
        captured = max(1, int(hold.amount * fraction))
        calls = {
            "capture": lambda: wallets.capture(hold_id, captured, key=hold.key),
            "release": lambda: wallets.release(hold_id, key=hold.key),
            "expire": lambda: wallets.expire(hold_id),
        }
        if hold.resolved == how:
            # The same resolution again names the same transfer: a replay, or a conflict
            # if the amount differs.
            if how == "capture" and captured != hold.captured:
                with pytest.raises(TransferConflict):
                    calls[how]()
            else:
                calls[how]()
            return
        try:
            transfer = calls[how]()
        except HoldAlreadyResolved:
            assert hold.resolved is not None
            return
        assert hold.resolved is None
        hold.resolved = how
        hold.captured = captured if how == "capture" else 0
        wallet = self.model[hold.wallet]
        wallet.held -= hold.amount
        wallet.receive(hold.amount - (captured if how == "capture" else 0))
        self._remember(calls[how], transfer)

    @rule(hold=holds, fraction=st.floats(0.01, 1.0))
    def capture(self, hold: ModelHold, fraction: float) -> None:
        self._resolve(hold, "capture", fraction)

    @rule(hold=holds)
    def release(self, hold: ModelHold) -> None:
        self._resolve(hold, "release")

    @rule(hold=consumes(holds))
    def expire(self, hold: ModelHold) -> None:
        self._resolve(hold, "expire")

    @rule(w=st.integers(0, 2), amount=st.integers(1, 600))
    def refund_clawback(self, w: int, amount: int) -> None:
        key = self._key("refund")

        def action() -> Any:
            return wallets.clawback(self.workspaces[w], amount, key=key, code=Code.REFUND)

        self._remember(action, action())
        wallet = self.model[w]
        take = min(amount, wallet.available)
        wallet.available -= take
        wallet.owed += amount - take

    @rule(w=st.integers(0, 2), amount=st.integers(1, 600))
    def dispute_won(self, w: int, amount: int) -> None:
        key = self._key("won")

        def action() -> Any:
            return wallets.give_back(self.workspaces[w], amount, key=key, code=Code.DISPUTE_WON)

        self._remember(action, action())
        wallet = self.model[w]
        cancel = min(amount, wallet.owed)
        wallet.owed -= cancel
        wallet.available += amount - cancel

    @rule(data=st.data())
    def duplicate_an_earlier_call(self, data: st.DataObject) -> None:
        assume(self.calls)
        call = data.draw(st.sampled_from(self.calls))
        result = call.action()
        items = result if isinstance(result, list) else [result]
        assert sorted(str(t.pk) for t in items) == call.result_ids

    @rule(data=st.data(), extra=st.integers(1, 50))
    def reuse_an_id_with_other_fields(self, data: st.DataObject, extra: int) -> None:
        assume(self.grants)
        w, key, amount = data.draw(st.sampled_from(self.grants))
        with pytest.raises(TransferConflict):
            wallets.grant(self.workspaces[w], amount + extra, key=key)

    @invariant()
    def database_equals_model_and_audit_holds(self) -> None:
        for workspace, expected in zip(self.workspaces, self.model, strict=True):
            assert wallets.balance(workspace) == wallets.Balance(
                available=expected.available, held=expected.held, owed=expected.owed
            )
        report = run_audit(record=False)
        assert report.ok, report.violations


@pytest.mark.django_db
def test_the_ledger_matches_a_plain_model(settings: Any) -> None:
    # Holds may be expired at any later step.
    settings.HOLD_TIMEOUT_SECONDS = 0.000001
    run_state_machine_as_test(
        LedgerMachine,
        settings=hypothesis_settings(
            # LEDGER_MODEL_EXAMPLES=500 for a deeper search than the suite's default.
            max_examples=int(os.environ.get("LEDGER_MODEL_EXAMPLES", "25")),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
