package image

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// DeliveryKey signs and verifies the stable delivery URLs of variants. Its
// ID travels in every token, so keys can rotate: a new key signs, the old
// ones still verify until they are removed.
type DeliveryKey struct {
	ID     string
	Secret []byte
}

// MinDeliveryKeyBytes is the shortest secret a delivery key may have.
const MinDeliveryKeyBytes = 32

// ParseDeliveryKeys parses a DELIVERY_SIGNING_KEYS setting,
// "kid1:base64key,kid2:base64key": the first signs, all verify. A key id is
// 1 to 16 characters of A-Z, a-z, 0-9, _ or -; a secret is standard or
// URL-safe base64 of at least 32 bytes.
func ParseDeliveryKeys(s string) ([]DeliveryKey, error) {
	var keys []DeliveryKey
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok || !validKeyID(id) {
			return nil, errors.New("want kid:base64key items, kid of 1 to 16 letters, digits, _ or -")
		}
		secret, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("key %s: not base64", id)
		}
		if len(secret) < MinDeliveryKeyBytes {
			return nil, fmt.Errorf("key %s: %d bytes, want at least %d (openssl rand -base64 32)", id, len(secret), MinDeliveryKeyBytes)
		}
		if seen[id] {
			return nil, fmt.Errorf("key id %s used twice", id)
		}
		seen[id] = true
		keys = append(keys, DeliveryKey{ID: id, Secret: secret})
	}
	if len(keys) == 0 {
		return nil, errors.New("no key")
	}
	return keys, nil
}

// FormatDeliveryKeys is the inverse of ParseDeliveryKeys.
func FormatDeliveryKeys(keys []DeliveryKey) string {
	items := make([]string, len(keys))
	for i, k := range keys {
		items[i] = k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret)
	}
	return strings.Join(items, ",")
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func validKeyID(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// DeliveryToken is what a stable delivery URL names: a variant of an
// image, in one format or (Format "") in the one the client's Accept
// header prefers.
type DeliveryToken struct {
	ImageID string
	Variant string
	Format  Format
	// Expires is when the URL stops working; the zero time is never (the
	// URL works as long as the image exists).
	Expires time.Time
}

// The errors of a delivery URL.
var (
	ErrBadDeliveryURL = failure.New(failure.Forbidden, "invalid_signature", "the delivery URL is not one this service signed")
	ErrExpiredURL     = failure.New(failure.Forbidden, "expired_url", "the delivery URL has expired")
)

// formatCodes numbers the formats inside tokens; 0 is "negotiate".
var formatCodes = []Format{"", FormatJPEG, FormatPNG, FormatWebP, FormatAVIF}

// tokenVersion is the first byte of a token's payload.
const tokenVersion = 1

// Sign returns the token of t signed with key: key id, payload and a
// 128-bit HMAC-SHA256 tag, each base64url, joined by dots. The payload is
// binary (the image id's 16 bytes, the format, the expiry, the variant
// name), so a URL stays short.
func (t DeliveryToken) Sign(key DeliveryKey) (string, error) {
	id, err := uuid.Parse(t.ImageID)
	if err != nil {
		return "", fmt.Errorf("sign delivery token: image id: %w", err)
	}
	code := -1
	for i, f := range formatCodes {
		if f == t.Format {
			code = i
		}
	}
	if code < 0 {
		return "", fmt.Errorf("sign delivery token: format %q", t.Format)
	}
	payload := []byte{tokenVersion}
	payload = append(payload, id[:]...)
	payload = append(payload, byte(code))
	var exp uint64
	if !t.Expires.IsZero() {
		exp = uint64(max(t.Expires.Unix(), 1))
	}
	payload = binary.AppendUvarint(payload, exp)
	payload = append(payload, t.Variant...)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return key.ID + "." + p + "." + base64.RawURLEncoding.EncodeToString(tag(key, p)), nil
}

// tag is the HMAC of a token's key id and payload, cut to 128 bits.
func tag(key DeliveryKey, payload string) []byte {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("imagesvc delivery\x00" + key.ID + "\x00" + payload))
	return m.Sum(nil)[:16]
}

// VerifyDeliveryToken checks a token against keys (a key that was removed
// verifies nothing) and its expiry at now, and returns what it names.
func VerifyDeliveryToken(s string, keys []DeliveryKey, now time.Time) (DeliveryToken, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return DeliveryToken{}, ErrBadDeliveryURL
	}
	var key *DeliveryKey
	for i := range keys {
		if keys[i].ID == parts[0] {
			key = &keys[i]
		}
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if key == nil || err != nil || !hmac.Equal(got, tag(*key, parts[1])) {
		return DeliveryToken{}, ErrBadDeliveryURL
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(payload) < 19 || payload[0] != tokenVersion || int(payload[17]) >= len(formatCodes) {
		return DeliveryToken{}, ErrBadDeliveryURL
	}
	id, _ := uuid.FromBytes(payload[1:17])
	t := DeliveryToken{ImageID: id.String(), Format: formatCodes[payload[17]]}
	exp, n := binary.Uvarint(payload[18:])
	if n <= 0 || exp > 1<<40 {
		return DeliveryToken{}, ErrBadDeliveryURL
	}
	t.Variant = string(payload[18+n:])
	if exp != 0 {
		t.Expires = time.Unix(int64(exp), 0)
		if !now.Before(t.Expires) {
			return DeliveryToken{}, ErrExpiredURL
		}
	}
	return t, nil
}

// DeliveryPath is the path of the stable delivery URLs on the API; the
// token follows it.
const DeliveryPath = "/v1/i/"

// expiry is when a delivery URL signed at now stops working. With no
// lifetime, never. With one, the expiry is the end of the window after
// now's: windows of one lifetime each, so the URL is the same for every
// read within a window and works for between one and two lifetimes.
func (c Config) expiry(now time.Time) time.Time {
	if c.DeliveryLifetime <= 0 {
		return time.Time{}
	}
	l := int64(c.DeliveryLifetime / time.Second)
	return time.Unix((now.Unix()/l+2)*l, 0)
}

// link fills in the stable URLs of a done image's variants and of each of
// their formats, under Config.PublicURL (empty: a path the HTTP layer makes
// absolute with the request's origin). An image not done has no variants.
func link(img *Image, cfg Config, now time.Time) error {
	if img.Status != StatusDone {
		img.Variants = nil
		return nil
	}
	if len(cfg.DeliveryKeys) == 0 {
		return errors.New("no delivery signing key")
	}
	key, exp := cfg.DeliveryKeys[0], cfg.expiry(now)
	url := func(v *Variant, f Format) (string, error) {
		tok, err := DeliveryToken{ImageID: img.ID, Variant: v.Name, Format: f, Expires: exp}.Sign(key)
		if err != nil {
			return "", err
		}
		return strings.TrimSuffix(cfg.PublicURL, "/") + DeliveryPath + tok, nil
	}
	for i := range img.Variants {
		v := &img.Variants[i]
		v.Formats = v.formats()
		u, err := url(v, "")
		if err != nil {
			return err
		}
		v.URL = u
		for j := range v.Formats {
			if v.Formats[j].URL, err = url(v, FormatOf(v.Formats[j].ContentType)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delivery is where a stable delivery URL sends its client.
type Delivery struct {
	// Location is a presigned GET URL of the object, or its public URL
	// under Config.DeliveryBaseURL.
	Location string
	// ContentType is the format chosen.
	ContentType string
	// Negotiated is true when the format was chosen from Accept: the answer
	// varies with it.
	Negotiated bool
}

// Deliver resolves a stable delivery URL's token: the variant in the
// format it names or, for a negotiating one, the best of its formats that
// accept (an Accept header) allows: AVIF, then WebP, then the base (JPEG
// or PNG). A token that is forged, signed by a removed key or expired is
// ErrBadDeliveryURL or ErrExpiredURL; a deleted image (or one no longer
// done, or a variant or format it no longer has) is ErrNotFound.
func (s *Service) Deliver(ctx context.Context, token, accept string) (Delivery, error) {
	t, err := VerifyDeliveryToken(token, s.cfg.DeliveryKeys, s.now())
	if err != nil {
		return Delivery{}, err
	}
	img, err := s.catalog.Image(ctx, t.ImageID)
	if err != nil {
		return Delivery{}, err
	}
	if img.Status != StatusDone {
		return Delivery{}, ErrNotFound
	}
	var v *Variant
	for i := range img.Variants {
		if img.Variants[i].Name == t.Variant {
			v = &img.Variants[i]
		}
	}
	if v == nil {
		return Delivery{}, ErrNotFound
	}
	formats := v.formats()
	var chosen *VariantFormat
	if t.Format != "" {
		for i := range formats {
			if FormatOf(formats[i].ContentType) == t.Format {
				chosen = &formats[i]
			}
		}
		if chosen == nil {
			return Delivery{}, ErrNotFound
		}
	} else {
		chosen = negotiate(formats, accept)
	}
	d := Delivery{ContentType: chosen.ContentType, Negotiated: t.Format == ""}
	if s.cfg.DeliveryBaseURL != "" {
		d.Location = strings.TrimSuffix(s.cfg.DeliveryBaseURL, "/") + "/" + chosen.Key
		return d, nil
	}
	if d.Location, err = s.blobs.PresignGet(ctx, chosen.Key, s.cfg.URLExpiry); err != nil {
		return Delivery{}, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("presign %s: %w", chosen.Key, err))
	}
	return d, nil
}

// negotiate picks the format accept allows among formats (the base
// first): AVIF, then WebP, else the base, whatever accept says, since it is
// the one every client decodes.
func negotiate(formats []VariantFormat, accept string) *VariantFormat {
	for _, want := range []Format{FormatAVIF, FormatWebP} {
		if !accepts(accept, want.ContentType()) {
			continue
		}
		for i := range formats {
			if FormatOf(formats[i].ContentType) == want {
				return &formats[i]
			}
		}
	}
	for i := range formats {
		if f := FormatOf(formats[i].ContentType); f == FormatJPEG || f == FormatPNG {
			return &formats[i]
		}
	}
	return &formats[0]
}

// accepts reports whether an Accept header names a media type explicitly
// with a non-zero quality. Wildcards do not count: browsers send */* with
// every image request, and a client that sends only */* gets the base.
func accepts(accept, contentType string) bool {
	for _, item := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(item))
		if err != nil || mt != contentType {
			continue
		}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err != nil || v <= 0 {
				return false
			}
		}
		return true
	}
	return false
}
