-- placeholder, dominant_color: a BlurHash of the image and its most common
-- colour (#rrggbb), made with the variants.
-- profile: the variant set (names, boxes, formats) the variants were made
-- with; the backfill re-processes the done images of another one, in id
-- order (images_status_profile).
ALTER TABLE images
    ADD COLUMN placeholder    VARCHAR(64) NULL,
    ADD COLUMN dominant_color CHAR(7)     NULL,
    ADD COLUMN profile        VARCHAR(32) NULL;
CREATE INDEX images_status_profile ON images (status, profile, id);
-- formats: JSON, every encoding of the variant [{content_type, bytes,
-- object_key}], its base (the row's own columns) first; NULL for a variant
-- recorded before there were several.
ALTER TABLE image_variants ADD COLUMN formats TEXT NULL;
