-- depends: 0003.beach-membership
--
-- The ack writer's batch in one statement: record_action_groups writes each group of
-- action records under its own private beach (it sets beach.private_beach_id before each
-- group, for the rest of the transaction), so row-level security sees every insert with
-- the tenant it belongs to.  SECURITY INVOKER: it has the caller's rights and no more.
-- Per group: the sessions of the beach among the group's (known), the rows inserted.

CREATE FUNCTION beach_manager.record_action_groups(
    p_beaches text[], p_counts integer[], p_hs text[], p_aid text[], p_tok uuid[], p_typ text[],
    p_payload jsonb[], p_status text[], p_enq timestamptz[], p_ack timestamptz[])
    RETURNS TABLE (o_group integer, o_inserted boolean, o_host text, o_action text)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    g integer;
    lo integer := 1;
    hi integer;
BEGIN
    FOR g IN 1 .. coalesce(array_length(p_beaches, 1), 0) LOOP
        hi := lo + p_counts[g] - 1;
        PERFORM set_config('beach.private_beach_id', p_beaches[g], true),
                set_config('beach.account_id', '', true);
        RETURN QUERY
        WITH r AS (
            SELECT * FROM unnest(p_hs[lo:hi], p_aid[lo:hi], p_tok[lo:hi], p_typ[lo:hi],
                                 p_payload[lo:hi], p_status[lo:hi], p_enq[lo:hi], p_ack[lo:hi])
                AS r(hs, aid, tok, typ, payload, status, enq, ack)
        ), known AS (
            SELECT s.host_session_id AS hs FROM beach_manager.host_session s
            WHERE s.private_beach_id = p_beaches[g] AND s.host_session_id = ANY(p_hs[lo:hi])
        ), ins AS (
            INSERT INTO beach_manager.action_log AS l (private_beach_id, host_session_id, action_id,
                controller_token, action_type, payload, status, enqueued_at, acked_at)
            SELECT p_beaches[g], r.hs, r.aid, r.tok, r.typ, r.payload, r.status, r.enq, r.ack
            FROM r JOIN known ON known.hs = r.hs
            ORDER BY r.hs, r.aid
            ON CONFLICT (private_beach_id, host_session_id, action_id) DO NOTHING
            RETURNING l.host_session_id, l.action_id
        )
        SELECT g, true, ins.host_session_id, ins.action_id FROM ins
        UNION ALL SELECT g, false, known.hs, NULL::text FROM known;
        lo := hi + 1;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION beach_manager.record_action_groups(text[], integer[], text[], text[], uuid[],
    text[], jsonb[], text[], timestamptz[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION beach_manager.record_action_groups(text[], integer[], text[], text[], uuid[],
    text[], jsonb[], text[], timestamptz[], timestamptz[]) TO beach_manager_app;
