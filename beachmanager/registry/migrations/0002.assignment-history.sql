-- depends: 0001.initial-schema
--
-- The assignment service's audit trail (owned by the assignment service, beachmanager/assign).
-- manager_assignment holds each host's current owner; this table keeps every move: first
-- placement, failover, drain hand-over, rebalance, restore and release (manager_instance_id NULL).
-- Rows are written once per move by the instance that made it; the unique index makes a
-- retried write a no-op.

CREATE TABLE beach_manager.manager_assignment_event (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_session_id     text NOT NULL,
    manager_instance_id text,
    reassigned_from     text,
    reason              text NOT NULL CHECK (reason IN ('attach', 'failover', 'drain', 'rebalance', 'restore', 'release')),
    assigned_at         timestamptz NOT NULL,
    recorded_by         text NOT NULL
);
CREATE UNIQUE INDEX manager_assignment_event_once
    ON beach_manager.manager_assignment_event (host_session_id, assigned_at,
                                               coalesce(manager_instance_id, ''));
CREATE INDEX manager_assignment_event_by_time
    ON beach_manager.manager_assignment_event (assigned_at DESC);

GRANT SELECT, INSERT ON beach_manager.manager_assignment_event TO beach_manager_app;
