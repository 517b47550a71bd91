-- crashes: claims of the image that found it still processing, its previous
-- attempt never heard of again (a worker killed, or stuck past its lease).
-- Processing that kills its worker is ended after a few (processing_crashed)
-- instead of being handed from worker to worker for ever.
ALTER TABLE images ADD COLUMN crashes INT NOT NULL DEFAULT 0;
