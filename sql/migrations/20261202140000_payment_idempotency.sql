-- record_enforcement_payment(): idempotent with an optional idempotency_key.
--
-- Why: a payment sent twice (a console's retried HTTP request, an import run again) was
-- recorded twice, double-counting money. A caller now passes an idempotency_key (the
-- payment's own reference, e.g. a check number or ACH trace, or a key generated once per
-- payment): the same key again returns the first call's result and writes nothing; the same
-- key for another case or amount is refused (23505). Calls without a key behave as before.
--
-- Why a unique key claimed first, not check-then-insert: the key row is inserted
-- (ON CONFLICT DO NOTHING) before anything else, so of two concurrent calls with one key the
-- second waits on the first's uncommitted key row; when the first commits it finds the row
-- and replays, when the first rolls back (overpayment, closed case) it records the payment
-- itself. A refused payment rolls its key back with it, so a retry is refused the same way.
-- The key row is taken before the case lock, so the lock order (key, case, judgment) is the
-- same for every caller.
--
-- The key table has no foreign key to the case: the key is claimed before the case is
-- looked up, and a missing case must stay P0002 (raised by lock_case), not 23503.

create table enforcement_private.payment_idempotency_keys (
    idempotency_key text primary key,
    case_id uuid not null,
    amount numeric(14, 2) not null,
    result jsonb,
    created_at timestamptz not null default pg_catalog.now()
);

comment on table enforcement_private.payment_idempotency_keys is
    'One row per idempotency_key passed to record_enforcement_payment: the case and amount it was '
    'used for and the result returned (replayed on a repeat). Written only by the RPC.';

revoke all on table enforcement_private.payment_idempotency_keys from public;

create or replace function public.record_enforcement_payment(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'record_enforcement_payment';
    v_case_id uuid;
    v_judgment_id uuid;
    v_amount numeric;
    v_received_at timestamptz;
    v_source text;
    v_document_path text;
    v_actor text;
    v_case public.enforcement_cases;
    v_judgment public.judgments;
    v_case_balance numeric;
    v_judgment_balance numeric;
    v_event_id uuid;
    v_key text;
    v_claimed text;
    v_first enforcement_private.payment_idempotency_keys;
    v_result jsonb;
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array[
            'case_id', 'judgment_id', 'amount', 'received_at', 'source', 'document_path', 'actor',
            'idempotency_key'
        ]
    );
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_judgment_id := enforcement_private.field_uuid(c_rpc, payload, 'judgment_id', false);
    v_amount := enforcement_private.field_numeric(
        c_rpc, payload, 'amount', true, 0, 999999999999.99, p_min_exclusive => true
    );
    v_received_at := enforcement_private.field_timestamptz(
        c_rpc, payload, 'received_at', false, pg_catalog.now() + interval '5 minutes'
    );
    v_source := enforcement_private.field_text(c_rpc, payload, 'source', false);
    v_document_path := enforcement_private.field_storage_path(c_rpc, payload, 'document_path', false);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );

    v_key := enforcement_private.field_text(c_rpc, payload, 'idempotency_key', false);

    if v_key is not null then
        insert into enforcement_private.payment_idempotency_keys (idempotency_key, case_id, amount)
        values (v_key, v_case_id, v_amount)
        on conflict (idempotency_key) do nothing
        returning idempotency_key into v_claimed;
        if v_claimed is null then
            select k.* into v_first
              from enforcement_private.payment_idempotency_keys as k
             where k.idempotency_key = v_key;
            if not found then
                -- The conflicting row is committed but not in this transaction's snapshot
                -- (REPEATABLE READ or stricter): the first result cannot be read here.
                raise exception using
                    errcode = '40001',
                    message = pg_catalog.format(
                        '%s: idempotency_key %s was used by a concurrent transaction', c_rpc, v_key
                    ),
                    hint = 'Retry the call (in a new transaction).';
            end if;
            if v_first.case_id <> v_case_id or v_first.amount <> v_amount then
                raise exception using
                    errcode = '23505',
                    message = pg_catalog.format(
                        '%s: idempotency_key %s was already used for a payment of %s on case %s',
                        c_rpc, v_key, v_first.amount, v_first.case_id
                    ),
                    hint = 'Use a new idempotency_key for a different payment.';
            end if;
            return v_first.result;
        end if;
    end if;

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);

    if v_judgment_id is not null and v_judgment_id <> v_case.judgment_id then
        if not exists (select 1 from public.judgments as j where j.id = v_judgment_id) then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: judgment %s not found', c_rpc, v_judgment_id);
        end if;
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: judgment_id %s is not the judgment of case %s', c_rpc, v_judgment_id, v_case_id
            );
    end if;

    select j.* into v_judgment
      from public.judgments as j
     where j.id = v_case.judgment_id
       for no key update;

    if v_amount > v_case.current_balance or v_amount > v_judgment.balance_due then
        raise exception using
            errcode = 'DF004',
            message = pg_catalog.format(
                '%s: amount %s exceeds the balance due (case %s, judgment %s)',
                c_rpc, v_amount, v_case.current_balance, v_judgment.balance_due
            ),
            hint = 'Overpayments are rejected, not capped: record at most the balance and handle the excess.';
    end if;

    v_case_balance := v_case.current_balance - v_amount;
    v_judgment_balance := v_judgment.balance_due - v_amount;

    update public.enforcement_cases as c set current_balance = v_case_balance where c.id = v_case_id;
    update public.judgments as j set balance_due = v_judgment_balance where j.id = v_judgment.id;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta)
    values (
        v_case_id, v_actor, 'rpc', 'payment_recorded',
        pg_catalog.jsonb_build_object(
            'current_balance', pg_catalog.jsonb_build_object('from', v_case.current_balance, 'to', v_case_balance),
            'judgment_balance_due',
            pg_catalog.jsonb_build_object('from', v_judgment.balance_due, 'to', v_judgment_balance),
            'amount', v_amount
        )
    );

    v_event_id := enforcement_private.append_event(
        c_rpc, v_case_id, 'payment_received',
        pg_catalog.jsonb_build_object(
            'amount', v_amount,
            'source', v_source,
            'judgment_id', v_judgment.id,
            'case_balance_after', v_case_balance,
            'judgment_balance_after', v_judgment_balance,
            'idempotency_key', v_key
        ),
        v_document_path, null, v_actor, v_received_at
    );

    v_result := pg_catalog.jsonb_build_object(
        'event_id', v_event_id,
        'case_id', v_case_id,
        'amount', v_amount,
        'case_balance', v_case_balance,
        'judgment_balance', v_judgment_balance
    );
    if v_key is not null then
        update enforcement_private.payment_idempotency_keys as k
           set result = v_result
         where k.idempotency_key = v_key;
    end if;
    return v_result;
end;
$$;

comment on function public.record_enforcement_payment(jsonb) is
    'Records a payment on an open case. Payload: case_id (uuid), judgment_id (uuid, must be the case''s; '
    'optional), amount (> 0, at most 2 decimals), received_at (not in the future), source, document_path, '
    'actor, idempotency_key (optional, at most 200 characters: the same key again returns the first '
    'result and writes nothing; the same key with another case or amount is 23505). Reduces '
    'enforcement_cases.current_balance and judgments.balance_due under row locks in one transaction, '
    'writes history and a payment_received event. Overpayment is rejected. Returns {event_id, case_id, '
    'amount, case_balance, judgment_balance}. Errors: 22023, P0002, 23505 (key reused), 40001 (key '
    'used by a concurrent transaction this snapshot cannot see), DF001 (case closed), DF004 '
    '(overpayment). Callable by enforcement_operator and service_role.';

revoke execute on function public.record_enforcement_payment(jsonb) from public, anon, authenticated;
grant execute on function public.record_enforcement_payment(jsonb) to enforcement_operator, service_role;
