ALTER TABLE users DROP KEY users_deleted, DROP COLUMN deleted_at;
