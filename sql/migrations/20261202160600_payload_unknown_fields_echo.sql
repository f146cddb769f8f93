-- The enforcement RPCs' "unknown field(s)" message names at most 100 characters of keys.
--
-- Why: the keys of a payload are caller input; a 10 MB key came back as a 10 MB error
-- message. Keys are listed as before, cut at 100 characters ("...").

create or replace function enforcement_private.require_payload(
    p_rpc text,
    p_payload jsonb,
    p_allowed text[]
)
returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_unknown text;
begin
    if p_payload is null or pg_catalog.jsonb_typeof(p_payload) <> 'object' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: payload must be a JSON object', p_rpc),
            hint = pg_catalog.format('Allowed fields: %s.', pg_catalog.array_to_string(p_allowed, ', '));
    end if;

    select pg_catalog.string_agg(k, ', ' order by k)
      into v_unknown
      from pg_catalog.jsonb_object_keys(p_payload) as k
     where k <> all (p_allowed);

    if v_unknown is not null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: unknown field(s) %s',
                p_rpc,
                case when pg_catalog.length(v_unknown) > 100 then pg_catalog.left(v_unknown, 100) || '...'
                     else v_unknown end
            ),
            hint = pg_catalog.format('Allowed fields: %s.', pg_catalog.array_to_string(p_allowed, ', '));
    end if;
end;
$$;
