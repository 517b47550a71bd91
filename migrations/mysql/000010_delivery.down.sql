ALTER TABLE image_variants DROP COLUMN formats;
DROP INDEX images_status_profile ON images;
ALTER TABLE images DROP COLUMN profile, DROP COLUMN dominant_color, DROP COLUMN placeholder;
