-- Undo version 1.  The role beach_manager_app is cluster-wide and may serve other databases,
-- so it is left in place.
DROP SCHEMA beach_manager CASCADE;
