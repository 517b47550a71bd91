ALTER TABLE images DROP COLUMN crashes;
