-- record_enforcement_payment(): money received against a case.
--
-- Why row locks and one order: the case row is locked first (as every enforcement RPC
-- does), then the judgment row, both FOR NO KEY UPDATE. Concurrent payments on one case
-- therefore apply one after the other, each re-reading the balances the previous one left:
-- no lost update, and the overpayment check always sees the true balance.
--
-- Overpayment is rejected (DF004), not capped: a payment larger than the balance means a
-- data-entry error or a refund to arrange, and capping would silently record less money
-- than was received. Closing a fully paid case stays an explicit close_enforcement_case().

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
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['case_id', 'judgment_id', 'amount', 'received_at', 'source', 'document_path', 'actor']
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
            'judgment_balance_after', v_judgment_balance
        ),
        v_document_path, null, v_actor, v_received_at
    );

    return pg_catalog.jsonb_build_object(
        'event_id', v_event_id,
        'case_id', v_case_id,
        'amount', v_amount,
        'case_balance', v_case_balance,
        'judgment_balance', v_judgment_balance
    );
end;
$$;

comment on function public.record_enforcement_payment(jsonb) is
    'Records a payment on an open case. Payload: case_id (uuid), judgment_id (uuid, must be the case''s; '
    'optional), amount (> 0, at most 2 decimals), received_at (not in the future), source, document_path, '
    'actor. Reduces enforcement_cases.current_balance and judgments.balance_due under row locks in one '
    'transaction, writes history and a payment_received event. Overpayment is rejected. Returns {event_id, '
    'case_id, amount, case_balance, judgment_balance}. Errors: 22023, P0002, DF001 (case closed), DF004 '
    '(overpayment). Callable by enforcement_operator and service_role.';

revoke execute on function public.record_enforcement_payment(jsonb) from public, anon, authenticated;
grant execute on function public.record_enforcement_payment(jsonb) to enforcement_operator, service_role;
