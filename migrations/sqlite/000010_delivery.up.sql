-- placeholder, dominant_color, profile, formats: see the MySQL migration.
ALTER TABLE images ADD COLUMN placeholder TEXT NULL;
ALTER TABLE images ADD COLUMN dominant_color TEXT NULL;
ALTER TABLE images ADD COLUMN profile TEXT NULL;
CREATE INDEX images_status_profile ON images (status, profile, id);
ALTER TABLE image_variants ADD COLUMN formats TEXT NULL;
