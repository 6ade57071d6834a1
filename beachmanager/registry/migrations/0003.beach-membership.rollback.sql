DROP TABLE beach_manager.private_beach_membership;
ALTER TABLE beach_manager.private_beach DROP COLUMN owner_account_id, DROP COLUMN name;
