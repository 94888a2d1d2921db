"""The one write path of the credit ledger.

`create_transfers` writes a batch of transfers in one database transaction:
it locks every account the batch touches in ascending id order (so two
batches can never wait on each other in a cycle) by updating each account's
counters with a guarded UPDATE, inserts the transfer rows, and commits. Either
the whole batch is written or nothing is. It makes no network call, ever.

The transfer id is the idempotency key (as in TigerBeetle): writing an id that
exists with the same fields returns the existing row; with different fields it
raises `TransferConflict`. Ids are UUIDv5 values derived from what caused the
transfer (`transfer_id("hold", "generation:<id>")`), so a retry anywhere (a
redelivered task, a duplicate webhook) names the same transfer.

Writes are optimistic: a new id is simply inserted, and the unique keys (the
transfer id, one resolution per hold) catch a replay or a race. Only then is
the batch rolled back and the existing rows read to answer.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from billing.models import (
    RESOLUTION_PHASES,
    SYSTEM_KINDS,
    Account,
    AccountKind,
    Code,
    Phase,
    Transfer,
)

_NAMESPACE = uuid.UUID("5c1d7f0e-3a5e-4f0b-9a61-6d6f63686931")


def transfer_id(*parts: object) -> uuid.UUID:
    """A deterministic transfer id from the parts that identify its cause."""
    return uuid.uuid5(_NAMESPACE, ":".join(str(part) for part in parts))


class LedgerError(Exception):
    """A transfer the ledger refuses; nothing was written."""


class InsufficientCredits(LedgerError):
    def __init__(self, account: Account, needed: int) -> None:
        self.account = account
        self.available = account.available
        self.needed = needed
        super().__init__(f"Needs {needed} credits, {max(self.available, 0)} available.")


class TransferConflict(LedgerError):
    def __init__(self, transfer_id: uuid.UUID, fields: list[str]) -> None:
        self.transfer_id = transfer_id
        self.fields = fields
        super().__init__(f"Transfer {transfer_id} exists with different {', '.join(fields)}.")


class HoldAlreadyResolved(LedgerError):
    def __init__(self, hold_id: uuid.UUID, resolution: Transfer) -> None:
        self.hold_id = hold_id
        self.resolution = resolution
        super().__init__(f"Hold {hold_id} was already resolved ({resolution.phase}).")


class InvalidTransfer(LedgerError):
    pass


class AccountOwes(LedgerError):
    def __init__(self, account: Account) -> None:
        self.account = account
        self.owed = account.owed
        super().__init__(f"Account {account.pk} owes {self.owed} credits.")


AccountRef = Account | int


@dataclass(frozen=True)
class NewTransfer:
    """A transfer to write. Captures, releases and expiries name their hold in
    `pending_id` and take its accounts; a release or expiry takes its amount too."""

    id: uuid.UUID
    code: Code
    amount: int = 0
    debit: AccountRef | None = None
    credit: AccountRef | None = None
    phase: Phase = Phase.SINGLE
    pending_id: uuid.UUID | None = None
    timeout: timedelta | None = None
    reference: str = ""
    member_id: int | None = None


@dataclass
class Written:
    """What `create_transfers` wrote (`created`) or found already written."""

    transfers: list[Transfer] = field(default_factory=list)
    created: list[Transfer] = field(default_factory=list)
    accounts: dict[int, Account] = field(default_factory=dict)


Check = Callable[[dict[int, Account]], None]


def create_transfers(
    batch: Sequence[NewTransfer],
    *,
    check: Check | None = None,
    also_lock: Iterable[AccountRef] = (),
    settled: Iterable[AccountRef] = (),
    holds: Iterable[Transfer] = (),
) -> Written:
    """Write `batch` all or nothing.

    Under the account locks (those of the batch plus `also_lock` and `settled`), each
    account in `settled` must owe nothing (`AccountOwes`), then `check` may raise a
    `LedgerError`, then the balance rule applies (`InsufficientCredits`). `holds` may
    pass hold rows the caller already read, to save reading them again."""
    if not batch:
        return Written()
    known = {t.pk: t for t in holds}
    holds_by_id = {**_load_holds([s for s in batch if s.pending_id not in known]), **known}
    found: dict[uuid.UUID, Transfer] = {}
    # Normally one pass. A replay or a race costs a rollback and one more pass
    # with what already exists taken out; a batch converges in a few.
    for _ in range(4):
        todo = [spec for spec in batch if spec.id not in found]
        if not todo:
            return Written(transfers=[found[spec.id] for spec in batch])
        try:
            written = _write(todo, holds_by_id, check, _pks(also_lock), _pks(settled))
        except (_AlreadyWritten, IntegrityError):
            # A unique key (an id, a hold's one resolution) or a counter's check
            # refused the write: something else wrote first. Look at what it was.
            found.update(_explain(batch, holds_by_id))
            continue
        except LedgerError:
            # A refusal (balance, suspension, cap) does not apply to a replay: if these
            # transfers were written before, the replay returns them as they are.
            existing = _explain(batch, holds_by_id)
            if not all(spec.id in existing for spec in todo):
                raise
            found.update(existing)
            continue
        fresh = {t.pk: t for t in written.created}
        written.transfers = [found.get(spec.id) or fresh[spec.id] for spec in batch]
        return written
    raise LedgerError("The ledger kept changing under this batch; try again.")


def lock_accounts(accounts: Iterable[AccountRef]) -> dict[int, Account]:
    """Lock accounts (inside a transaction) in ascending id order; return them fresh."""
    accounts_by_pk, _ = _lock_and_update({}, _pks(accounts))
    return accounts_by_pk


class _AlreadyWritten(Exception):
    """An id or a hold's resolution already exists: roll back and look."""


@dataclass
class _Item:
    spec: NewTransfer
    debit_id: int
    credit_id: int
    amount: int
    hold: Transfer | None = None


def _pks(accounts: Iterable[AccountRef]) -> list[int]:
    return [a if isinstance(a, int) else a.pk for a in accounts]


def _load_holds(batch: Sequence[NewTransfer]) -> dict[uuid.UUID, Transfer]:
    ids = [s.pending_id for s in batch if s.pending_id is not None]
    if not ids:
        return {}
    return {t.pk: t for t in load_transfers(ids)}


def load_transfers(ids: Sequence[uuid.UUID]) -> list[Transfer]:
    """Transfers by id, read with one plain query (the capture path reads its hold)."""
    sql = _LOAD_SQL.format(count=", ".join(["%s"] * len(ids)))
    return list(Transfer.objects.raw(sql, [_uuid_param(i) for i in ids]))


_LOAD_SQL = (
    "SELECT id, debit_account_id, credit_account_id, amount, phase, pending_id, timeout_at,"
    " code, reference, member_id, created_at FROM billing_transfer WHERE id IN ({count})"
)


def _item(spec: NewTransfer, holds: dict[uuid.UUID, Transfer]) -> _Item:
    if spec.phase in RESOLUTION_PHASES:
        hold = holds.get(spec.pending_id) if spec.pending_id else None
        if hold is None or hold.phase != Phase.PENDING:
            raise InvalidTransfer(f"{spec.pending_id} is not a hold.")
        amount = spec.amount if spec.phase == Phase.POST else hold.amount
        return _Item(spec, hold.debit_account_id, hold.credit_account_id, amount, hold)
    if spec.pending_id is not None:
        raise InvalidTransfer("Only captures, releases and expiries name a hold.")
    if spec.debit is None or spec.credit is None:
        raise InvalidTransfer("A transfer needs a debit and a credit account.")
    debit, credit = _pks([spec.debit, spec.credit])
    return _Item(spec, debit, credit, spec.amount)


def _build(item: _Item, now: datetime, resolving: set[uuid.UUID]) -> Transfer:
    """Validate what needs no balance and make the row (not yet saved)."""
    spec = item.spec
    if not isinstance(item.amount, int) or item.amount <= 0:
        raise InvalidTransfer("Amounts are positive whole numbers of credits.")
    if item.debit_id == item.credit_id:
        raise InvalidTransfer("A transfer moves credits between two different accounts.")
    timeout_at = None
    if spec.phase == Phase.PENDING:
        if spec.timeout is None or spec.timeout <= timedelta(0):
            raise InvalidTransfer("A hold needs a positive timeout.")
        timeout_at = now + spec.timeout
    member_id = spec.member_id
    if item.hold is not None:
        if item.hold.pk in resolving:
            raise InvalidTransfer("A batch resolves each hold at most once.")
        resolving.add(item.hold.pk)
        if spec.phase == Phase.POST and item.amount > item.hold.amount:
            raise InvalidTransfer(
                f"Cannot capture {item.amount} from a hold of {item.hold.amount}."
            )
        if spec.phase == Phase.EXPIRE and (
            item.hold.timeout_at is None or item.hold.timeout_at > now
        ):
            raise InvalidTransfer("This hold has not reached its timeout.")
        # A capture or release counts against the same member as its hold.
        member_id = item.hold.member_id
    return Transfer(
        id=spec.id,
        debit_account_id=item.debit_id,
        credit_account_id=item.credit_id,
        amount=item.amount,
        phase=spec.phase,
        pending_id=spec.pending_id,
        timeout_at=timeout_at,
        code=spec.code,
        reference=spec.reference,
        member_id=member_id,
        created_at=now,
    )


def _effects(rows: list[tuple[_Item, Transfer]]) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Each account's counter changes [debits pending, debits posted, credits pending,
    credits posted], and what each account is asked to spend."""
    deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    spent: dict[int, int] = defaultdict(int)
    for item, row in rows:
        debit, credit = deltas[row.debit_account_id], deltas[row.credit_account_id]
        if row.phase in (Phase.SINGLE, Phase.PENDING):
            slot = 1 if row.phase == Phase.SINGLE else 0
            debit[slot] += row.amount
            credit[slot + 2] += row.amount
            spent[row.debit_account_id] += row.amount
            continue
        # Resolving a hold frees its whole amount; a capture then posts what it took.
        assert item.hold is not None
        debit[0] -= item.hold.amount
        credit[2] -= item.hold.amount
        if row.phase == Phase.POST:
            debit[1] += row.amount
            credit[3] += row.amount
    return deltas, spent


def _write(
    todo: list[NewTransfer],
    holds: dict[uuid.UUID, Transfer],
    check: Check | None,
    also_lock: list[int],
    settled: list[int],
) -> Written:
    now = timezone.now()
    resolving: set[uuid.UUID] = set()
    rows = [(item, _build(item, now, resolving)) for item in (_item(s, holds) for s in todo)]
    transfers = [row for _, row in rows]
    deltas, spent = _effects(rows)
    if check is None and connection.vendor == "postgresql":
        accounts = _apply_in_database(transfers, deltas, spent, [*also_lock, *settled], settled)
        return Written(created=transfers, accounts=accounts)
    with transaction.atomic():
        # The locks are taken here and held to the commit: keep this block short.
        accounts, short = _lock_and_update(deltas, [*also_lock, *settled])
        # What is owed, and the caller's rules (monthly caps), explain a refusal
        # better than the balance does, so they speak first.
        for pk in settled:
            if accounts[pk].owed > 0:
                raise AccountOwes(accounts[pk])
        if check is not None:
            check(accounts)
        if short:
            raise InsufficientCredits(accounts[short[0]], spent[short[0]])
        _insert(transfers)
    return Written(created=transfers, accounts=accounts)


_APPLY_SQL = (
    "SELECT billing_apply_transfers(%s::bigint[], %s::bigint[], %s::bigint[], %s::uuid[],"
    " %s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], %s::uuid[], %s::timestamptz[],"
    " %s::varchar[], %s::varchar[], %s::bigint[], %s::timestamptz[])"
)


def _apply_in_database(
    rows: list[Transfer],
    deltas: dict[int, list[int]],
    spent: dict[int, int],
    also_lock: list[int],
    settled: list[int],
) -> dict[int, Account]:
    """PostgreSQL: the same write in one round trip (see billing_apply_transfers)."""
    ids = sorted(set(deltas) | set(also_lock))
    params: list[Any] = [
        ids,
        [value for pk in ids for value in deltas.get(pk, (0, 0, 0, 0))],
        settled,
        [row.pk for row in rows],
        [row.debit_account_id for row in rows],
        [row.credit_account_id for row in rows],
        [row.amount for row in rows],
        [str(row.phase) for row in rows],
        [row.pending_id for row in rows],
        [row.timeout_at for row in rows],
        [str(row.code) for row in rows],
        [row.reference for row in rows],
        [row.member_id for row in rows],
        [row.created_at for row in rows],
    ]
    for _attempt in range(3):
        try:
            # Alone, the statement is its own transaction; inside one, a savepoint
            # keeps a refusal from breaking the caller's transaction.
            with (
                transaction.atomic() if connection.in_atomic_block else nullcontext(),
                connection.cursor() as cursor,
            ):
                cursor.execute(_APPLY_SQL, params)
                (states,) = cursor.fetchone()
        except DatabaseError as error:
            code = getattr(error.__cause__, "sqlstate", None)
            detail = getattr(getattr(error.__cause__, "diag", None), "message_primary", "")
            if code == "ML001":
                account = _account_from_json(json.loads(detail))
                if not account.debits_must_not_exceed_credits:
                    # No balance rule to break: the row did not exist when the UPDATE's
                    # snapshot was taken and did for the next statement's (a system shard
                    # that another transaction created meanwhile). Run it again.
                    continue
                raise InsufficientCredits(account, spent[account.pk]) from None
            if code == "ML002":
                raise AccountOwes(_account_from_json(json.loads(detail))) from None
            if code == "ML003":
                raise _AlreadyWritten from None
            if code == "ML004" and int(detail) < 0:
                _create_system_account(int(detail))  # system shards are created on first use
                continue
            if code == "ML004":
                raise InvalidTransfer(f"There is no account {detail}.") from None
            raise
        for row in rows:
            row._state.adding = False
            row._state.db = connection.alias
        if isinstance(states, str):  # Django leaves jsonb as text for JSONField to parse
            states = json.loads(states)
        return {state["id"]: _account_from_json(state) for state in states}
    raise InvalidTransfer("Could not create the system accounts this transfer needs.")


def _account_from_json(state: dict[str, Any]) -> Account:
    return Account(
        id=state["id"],
        kind=state["kind"],
        workspace_id=state["workspace_id"],
        shard=state["shard"],
        debits_must_not_exceed_credits=state["debits_must_not_exceed_credits"],
        debits_pending=state["debits_pending"],
        debits_posted=state["debits_posted"],
        credits_pending=state["credits_pending"],
        credits_posted=state["credits_posted"],
    )


def _explain(
    batch: Sequence[NewTransfer], holds: dict[uuid.UUID, Transfer]
) -> dict[uuid.UUID, Transfer]:
    """After a refused insert: the batch's transfers that exist (checked to be the same
    transfer), or the resolution that got to a hold first."""
    existing = {t.pk: t for t in Transfer.objects.filter(pk__in=[s.id for s in batch])}
    for spec in batch:
        if spec.id in existing:
            _ensure_same(existing[spec.id], _item(spec, holds))
    pending = [s.pending_id for s in batch if s.pending_id and s.id not in existing]
    for resolution in Transfer.objects.filter(pending_id__in=pending):
        assert resolution.pending_id is not None
        raise HoldAlreadyResolved(resolution.pending_id, resolution)
    return existing


def _ensure_same(found: Transfer, item: _Item) -> None:
    wanted = {
        "debit_account_id": item.debit_id,
        "credit_account_id": item.credit_id,
        "amount": item.amount,
        "phase": item.spec.phase,
        "pending_id": item.spec.pending_id,
        "code": item.spec.code,
        "reference": item.spec.reference,
    }
    different = [name for name, value in wanted.items() if getattr(found, name) != value]
    if different:
        raise TransferConflict(found.pk, different)


_ACCOUNT_COLUMNS = (
    "id",
    "kind",
    "workspace_id",
    "shard",
    "debits_must_not_exceed_credits",
    "debits_pending",
    "debits_posted",
    "credits_pending",
    "credits_posted",
    "created_at",
)


def _lock_and_update(
    deltas: dict[int, list[int]], also_lock: list[int]
) -> tuple[dict[int, Account], list[int]]:
    """Lock each account in ascending id order by updating its counters in place;
    returns the accounts and those whose balance rule the update would break.

    The UPDATE's WHERE clause is the balance rule: a wallet's posted and pending
    debits may not exceed its posted credits (pending debits count, so a hold
    reserves what it may spend). No row updated means the rule would break; the
    row is then only locked, and the caller rolls everything back.
    """
    table = connection.ops.quote_name(Account._meta.db_table)
    columns = ", ".join(_ACCOUNT_COLUMNS)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    select = f"SELECT {columns} FROM {table} WHERE id = %s{lock}"  # noqa: S608
    update = (
        f"UPDATE {table} SET"  # noqa: S608
        " debits_pending = debits_pending + %s, debits_posted = debits_posted + %s,"
        " credits_pending = credits_pending + %s, credits_posted = credits_posted + %s"
        " WHERE id = %s AND (NOT debits_must_not_exceed_credits"
        "  OR credits_posted + %s >= debits_posted + %s + debits_pending + %s)"
        f" RETURNING {columns}"
    )
    accounts: dict[int, Account] = {}
    short: list[int] = []
    with connection.cursor() as cursor:
        for pk in sorted(set(deltas) | set(also_lock)):
            d_pending, d_posted, c_pending, c_posted = deltas.get(pk, (0, 0, 0, 0))
            changes = d_pending or d_posted or c_pending or c_posted
            for _attempt in range(3):
                if changes:
                    params = [d_pending, d_posted, c_pending, c_posted, pk, c_posted, d_posted]
                    cursor.execute(update, [*params, d_pending])
                else:
                    cursor.execute(select, [pk])
                values = cursor.fetchone()
                if values is not None:
                    break
                # Not updated: either the balance rule refused, or the row did not
                # exist when the statement started (a system shard created meanwhile).
                cursor.execute(select, [pk])
                values = cursor.fetchone()
                if values is None:
                    if pk >= 0:
                        raise InvalidTransfer(f"There is no account {pk}.")
                    _create_system_account(pk)  # system shards are created on first use
                    continue
                account = Account.from_db(connection.alias, list(_ACCOUNT_COLUMNS), list(values))
                if account.debits_must_not_exceed_credits and (
                    account.credits_posted + c_posted
                    < account.debits_posted + d_posted + account.debits_pending + d_pending
                ):
                    short.append(pk)  # locked, not changed: the caller rolls back
                    break
            else:
                raise InvalidTransfer(f"Could not update account {pk}.")
            accounts[pk] = Account.from_db(connection.alias, list(_ACCOUNT_COLUMNS), list(values))
    return accounts, short


def _create_system_account(pk: int) -> None:
    kind_index, shard = divmod(-pk, 100)
    Account.objects.get_or_create(
        pk=pk, defaults={"kind": SYSTEM_KINDS[kind_index - 1], "shard": shard}
    )


def _insert(rows: list[Transfer]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: a row not returned already existed (its id, or
    another resolution of its hold), which `_AlreadyWritten` reports."""
    table = connection.ops.quote_name(Transfer._meta.db_table)
    columns = (
        "id, debit_account_id, credit_account_id, amount, phase, pending_id, timeout_at,"
        " code, reference, member_id, created_at"
    )
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    ops = connection.ops
    for row in rows:
        params += [
            _uuid_param(row.pk),
            row.debit_account_id,
            row.credit_account_id,
            row.amount,
            row.phase,
            _uuid_param(row.pending_id),
            ops.adapt_datetimefield_value(row.timeout_at),
            row.code,
            row.reference,
            row.member_id,
            ops.adapt_datetimefield_value(row.created_at),
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {values}"  # noqa: S608
            " ON CONFLICT DO NOTHING RETURNING id",
            params,
        )
        inserted = cursor.fetchall()
    if len(inserted) != len(rows):
        raise _AlreadyWritten
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias


def _uuid_param(value: uuid.UUID | None) -> object:
    if value is None:
        return None
    return value if connection.vendor == "postgresql" else value.hex


__all__ = [
    "AccountKind",
    "AccountOwes",
    "HoldAlreadyResolved",
    "InsufficientCredits",
    "InvalidTransfer",
    "LedgerError",
    "NewTransfer",
    "TransferConflict",
    "Written",
    "create_transfers",
    "lock_accounts",
    "transfer_id",
]
