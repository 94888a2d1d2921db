from __future__ import annotations

from django.db import migrations

# The ledger's write primitive on PostgreSQL, so that a transfer costs one round
# trip instead of one per statement (the row locks are held for less time too).
# It holds no business rule: billing/ledger.py computes each account's counter
# changes and the rows to insert; this applies them in ascending account id
# order under the balance rule, checks that the named accounts owe nothing, and
# inserts the rows, all or nothing. Refusals are raised with SQLSTATE codes the
# Python side maps to its errors:
#   ML001 balance rule (message: the account as JSON)
#   ML002 account owes credits (message: the account as JSON)
#   ML003 a row already exists (its id or its hold's resolution)
#   ML004 no such account (message: the id)
APPLY = """
CREATE OR REPLACE FUNCTION billing_apply_transfers(
    p_accounts bigint[],
    p_deltas bigint[],
    p_settled bigint[],
    p_ids uuid[],
    p_debits bigint[],
    p_credits bigint[],
    p_amounts bigint[],
    p_phases varchar[],
    p_pendings uuid[],
    p_timeouts timestamptz[],
    p_codes varchar[],
    p_references varchar[],
    p_members bigint[],
    p_created timestamptz[]
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    acc billing_account%ROWTYPE;
    short_acc billing_account%ROWTYPE;
    has_short boolean := false;
    states jsonb := '[]'::jsonb;
    wrote integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_accounts, 1), 0) LOOP
        IF p_deltas[4*i-3] = 0 AND p_deltas[4*i-2] = 0
           AND p_deltas[4*i-1] = 0 AND p_deltas[4*i] = 0 THEN
            SELECT * INTO acc FROM billing_account WHERE id = p_accounts[i] FOR UPDATE;
        ELSE
            UPDATE billing_account SET
                debits_pending = debits_pending + p_deltas[4*i-3],
                debits_posted = debits_posted + p_deltas[4*i-2],
                credits_pending = credits_pending + p_deltas[4*i-1],
                credits_posted = credits_posted + p_deltas[4*i]
            WHERE id = p_accounts[i]
              AND (NOT debits_must_not_exceed_credits
                   OR credits_posted + p_deltas[4*i]
                      >= debits_posted + p_deltas[4*i-2] + debits_pending + p_deltas[4*i-3])
            RETURNING * INTO acc;
            IF NOT FOUND THEN
                SELECT * INTO acc FROM billing_account WHERE id = p_accounts[i] FOR UPDATE;
                -- Reported after the loop: owing credits (ML002) explains more.
                IF FOUND AND NOT has_short THEN
                    short_acc := acc;
                    has_short := true;
                END IF;
            END IF;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'ML004', MESSAGE = p_accounts[i]::text;
        END IF;
        IF acc.id = ANY(p_settled) AND acc.debits_posted > acc.credits_posted THEN
            RAISE EXCEPTION USING ERRCODE = 'ML002', MESSAGE = to_jsonb(acc)::text;
        END IF;
        states := states || to_jsonb(acc);
    END LOOP;
    IF has_short THEN
        RAISE EXCEPTION USING ERRCODE = 'ML001', MESSAGE = to_jsonb(short_acc)::text;
    END IF;

    INSERT INTO billing_transfer (
        id, debit_account_id, credit_account_id, amount, phase, pending_id, timeout_at,
        code, reference, member_id, created_at
    )
    SELECT * FROM unnest(
        p_ids, p_debits, p_credits, p_amounts, p_phases, p_pendings, p_timeouts,
        p_codes, p_references, p_members, p_created
    )
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS wrote = ROW_COUNT;
    IF wrote < coalesce(array_length(p_ids, 1), 0) THEN
        RAISE EXCEPTION USING ERRCODE = 'ML003', MESSAGE = 'transfer already written';
    END IF;
    RETURN states;
END;
$$;
"""

DROP = "DROP FUNCTION IF EXISTS billing_apply_transfers;"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPLY, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_append_only_transfers_and_schedules")]

    operations = [migrations.RunPython(create, drop)]
