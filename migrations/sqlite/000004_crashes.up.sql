-- crashes: see the MySQL migration.
ALTER TABLE images ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;
