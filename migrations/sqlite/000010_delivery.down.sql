ALTER TABLE image_variants DROP COLUMN formats;
DROP INDEX images_status_profile;
ALTER TABLE images DROP COLUMN profile;
ALTER TABLE images DROP COLUMN dominant_color;
ALTER TABLE images DROP COLUMN placeholder;
