-- depends: 0002.assignment-history
--
-- Private-beach membership (the legacy manager's private_beach owner and
-- private_beach_membership shapes, with text ids): who may act in a private beach.  An
-- account acts in a beach as its owner (private_beach.owner_account_id) or through an
-- active membership whose role allows the action (viewer < contributor < admin < owner).
-- Tenant data: row-level security keyed by beach.private_beach_id, like the other tables.

ALTER TABLE beach_manager.private_beach
    ADD COLUMN owner_account_id text CHECK (length(owner_account_id) BETWEEN 1 AND 128),
    ADD COLUMN name text CHECK (length(name) <= 256);

CREATE TABLE beach_manager.private_beach_membership (
    private_beach_id      text NOT NULL REFERENCES beach_manager.private_beach (id) ON DELETE CASCADE,
    account_id            text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 128),
    role                  text NOT NULL CHECK (role IN ('owner', 'admin', 'contributor', 'viewer')),
    status                text NOT NULL DEFAULT 'active'
                              CHECK (status IN ('active', 'invited', 'suspended', 'revoked')),
    invited_by_account_id text DEFAULT beach_manager.current_account(),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (private_beach_id, account_id)
);
CREATE INDEX private_beach_membership_by_account
    ON beach_manager.private_beach_membership (account_id);

ALTER TABLE beach_manager.private_beach_membership ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON beach_manager.private_beach_membership
    USING (private_beach_id = beach_manager.current_beach())
    WITH CHECK (private_beach_id = beach_manager.current_beach());

GRANT SELECT, INSERT, UPDATE, DELETE ON beach_manager.private_beach_membership TO beach_manager_app;
