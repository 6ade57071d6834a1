-- beach-manager schema, version 1.
--
-- Everything lives in schema beach_manager (so it can share a database with the legacy
-- manager).  Tenant tables carry private_beach_id and have row-level security keyed by the
-- transaction-local setting beach.private_beach_id; the service runs as beach_manager_app,
-- which owns nothing, so the policies apply to it.  beach.account_id names the acting
-- account and fills the audit columns.

DO $$
BEGIN
    CREATE ROLE beach_manager_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- roles are cluster-wide: another database (or a concurrent migration) made it
END
$$;

-- The migrating user must be able to SET ROLE beach_manager_app (superusers always can).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT beach_manager_app TO %I', current_user);
    END IF;
END
$$;

CREATE SCHEMA beach_manager;
GRANT USAGE ON SCHEMA beach_manager TO beach_manager_app;

-- The tenant of the current transaction (NULL when unset: then no tenant row is visible).
CREATE FUNCTION beach_manager.current_beach() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('beach.private_beach_id', true), '') $$;

CREATE FUNCTION beach_manager.current_account() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('beach.account_id', true), '') $$;

CREATE TABLE beach_manager.private_beach (
    id                    text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    created_by_account_id text DEFAULT beach_manager.current_account(),
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE beach_manager.host_session (
    private_beach_id      text NOT NULL REFERENCES beach_manager.private_beach (id) ON DELETE CASCADE,
    host_session_id       text NOT NULL CHECK (length(host_session_id) BETWEEN 1 AND 128),
    harness_id            uuid NOT NULL,
    harness_type          text,
    capabilities          jsonb NOT NULL DEFAULT '[]'::jsonb,
    location_hint         text,
    metadata              jsonb,
    version               text,
    transport_mode        text CHECK (transport_mode IN ('fast_path', 'http_fallback')),
    attach_method         text NOT NULL CHECK (attach_method IN ('register', 'code')),
    attach_state          text NOT NULL,
    join_code_key_id      text,
    join_code_sealed      bytea,
    created_by_account_id text DEFAULT beach_manager.current_account(),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (private_beach_id, host_session_id),
    CHECK ((join_code_key_id IS NULL) = (join_code_sealed IS NULL))
);
CREATE INDEX host_session_by_id ON beach_manager.host_session (host_session_id);

CREATE TABLE beach_manager.controller_lease (
    token                 uuid PRIMARY KEY,
    private_beach_id      text NOT NULL,
    host_session_id       text NOT NULL,
    controller_account_id text,
    issued_by_account_id  text DEFAULT beach_manager.current_account(),
    reason                text,
    issued_at             timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    revoked_at            timestamptz,
    revoke_reason         text CHECK (revoke_reason IN ('released', 'expired', 'session_register')),
    FOREIGN KEY (private_beach_id, host_session_id)
        REFERENCES beach_manager.host_session (private_beach_id, host_session_id) ON DELETE CASCADE,
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
-- At most one unrevoked lease per (session, controller account, reason): the natural key
-- that makes acquire idempotent (a second acquire renews the same token).
CREATE UNIQUE INDEX controller_lease_live
    ON beach_manager.controller_lease (private_beach_id, host_session_id,
                                       coalesce(controller_account_id, ''), coalesce(reason, ''))
    WHERE revoked_at IS NULL;

CREATE TABLE beach_manager.controller_event (
    id                    uuid PRIMARY KEY,
    seq                   bigint GENERATED ALWAYS AS IDENTITY,
    private_beach_id      text NOT NULL,
    host_session_id       text NOT NULL,
    event_type            text NOT NULL CHECK (event_type IN (
                              'registered', 'lease_acquired', 'lease_released', 'lease_expired',
                              'actions_queued', 'actions_acked', 'health_reported', 'state_updated',
                              'pairing_added', 'pairing_removed')),
    controller_token      uuid,
    reason                text,
    controller_account_id text,
    issued_by_account_id  text,
    occurred_at           timestamptz NOT NULL,
    FOREIGN KEY (private_beach_id, host_session_id)
        REFERENCES beach_manager.host_session (private_beach_id, host_session_id) ON DELETE CASCADE
);
CREATE INDEX controller_event_by_session
    ON beach_manager.controller_event (private_beach_id, host_session_id, occurred_at DESC, seq DESC);

-- What controllers asked hosts to do (filled by the controller pipeline); idempotent on the
-- action id a controller chose.
CREATE TABLE beach_manager.action_log (
    private_beach_id      text NOT NULL,
    host_session_id       text NOT NULL,
    action_id             text NOT NULL CHECK (length(action_id) BETWEEN 1 AND 128),
    controller_token      uuid,
    action_type           text NOT NULL,
    payload               jsonb NOT NULL,
    status                text NOT NULL DEFAULT 'queued',
    enqueued_at           timestamptz NOT NULL,
    acked_at              timestamptz,
    PRIMARY KEY (private_beach_id, host_session_id, action_id),
    FOREIGN KEY (private_beach_id, host_session_id)
        REFERENCES beach_manager.host_session (private_beach_id, host_session_id) ON DELETE CASCADE
);

-- Membership and host placement (the assignment service); not tenant data.
CREATE TABLE beach_manager.manager_instance (
    id                text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    endpoint          text,
    capacity          integer NOT NULL CHECK (capacity > 0),
    load              integer NOT NULL DEFAULT 0 CHECK (load >= 0),
    last_heartbeat_at timestamptz NOT NULL
);

CREATE TABLE beach_manager.manager_assignment (
    host_session_id     text PRIMARY KEY,
    manager_instance_id text NOT NULL REFERENCES beach_manager.manager_instance (id),
    assigned_at         timestamptz NOT NULL,
    reassigned_from     text,
    reason              text NOT NULL
);
CREATE INDEX manager_assignment_by_instance ON beach_manager.manager_assignment (manager_instance_id);

-- Row-level security: a tenant row is visible and writable only inside a transaction whose
-- beach.private_beach_id names its private beach.
ALTER TABLE beach_manager.private_beach ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON beach_manager.private_beach
    USING (id = beach_manager.current_beach())
    WITH CHECK (id = beach_manager.current_beach());

ALTER TABLE beach_manager.host_session ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON beach_manager.host_session
    USING (private_beach_id = beach_manager.current_beach())
    WITH CHECK (private_beach_id = beach_manager.current_beach());

ALTER TABLE beach_manager.controller_lease ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON beach_manager.controller_lease
    USING (private_beach_id = beach_manager.current_beach())
    WITH CHECK (private_beach_id = beach_manager.current_beach());

ALTER TABLE beach_manager.controller_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON beach_manager.controller_event
    USING (private_beach_id = beach_manager.current_beach())
    WITH CHECK (private_beach_id = beach_manager.current_beach());

ALTER TABLE beach_manager.action_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON beach_manager.action_log
    USING (private_beach_id = beach_manager.current_beach())
    WITH CHECK (private_beach_id = beach_manager.current_beach());

-- Which private beaches hold a host session: the one lookup that crosses tenants (ids only),
-- so that /sessions/:id routes can find their tenant.  Runs with the owner's rights.
CREATE FUNCTION beach_manager.session_beaches(p_host_session_id text) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT private_beach_id FROM beach_manager.host_session
        WHERE host_session_id = p_host_session_id ORDER BY private_beach_id
    $$;
REVOKE ALL ON FUNCTION beach_manager.session_beaches(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION beach_manager.current_beach(), beach_manager.current_account(),
    beach_manager.session_beaches(text) TO beach_manager_app;
GRANT SELECT, INSERT ON beach_manager.private_beach TO beach_manager_app;
GRANT SELECT, INSERT, UPDATE ON beach_manager.host_session TO beach_manager_app;
GRANT SELECT, INSERT, UPDATE ON beach_manager.controller_lease TO beach_manager_app;
GRANT SELECT, INSERT ON beach_manager.controller_event TO beach_manager_app;
GRANT SELECT, INSERT, UPDATE ON beach_manager.action_log TO beach_manager_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON beach_manager.manager_instance TO beach_manager_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON beach_manager.manager_assignment TO beach_manager_app;
