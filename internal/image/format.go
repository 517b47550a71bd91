package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Format is an encoding variants are made in.
type Format string

// The formats of variants. FormatJPEG in a configuration stands for the
// base every browser decodes: JPEG for an opaque source, PNG for one with
// alpha (unless OUTPUT_FORMAT says otherwise).
const (
	FormatJPEG Format = "jpeg"
	FormatPNG  Format = "png"
	FormatWebP Format = "webp"
	FormatAVIF Format = "avif"
)

// ContentType is the media type of the format.
func (f Format) ContentType() string { return "image/" + string(f) }

// Ext is the file extension of the format's objects.
func (f Format) Ext() string {
	if f == FormatJPEG {
		return "jpg"
	}
	return string(f)
}

// FormatOf returns the format of a media type, or "" for one that is not a
// variant format.
func FormatOf(contentType string) Format {
	switch f := Format(strings.TrimPrefix(contentType, "image/")); f {
	case FormatJPEG, FormatPNG, FormatWebP, FormatAVIF:
		return f
	}
	return ""
}

// DefaultFormats are the formats of variants when VARIANT_FORMATS is unset:
// the JPEG (or PNG) base and WebP. WebP is decoded by every current
// browser and costs encodes only; AVIF's encoder costs several times the
// whole JPEG pipeline, so it is opt-in (measurements in the README).
var DefaultFormats = []Format{FormatJPEG, FormatWebP}

// ParseFormats parses a VARIANT_FORMATS setting such as "jpeg,webp,avif".
// jpeg is required: it is the base that every client decodes.
func ParseFormats(s string) ([]Format, error) {
	var out []Format
	for _, item := range strings.Split(s, ",") {
		f := Format(strings.ToLower(strings.TrimSpace(item)))
		switch f {
		case "":
			continue
		case FormatJPEG, FormatWebP, FormatAVIF:
		default:
			return nil, fmt.Errorf("format %q: want jpeg, webp or avif", item)
		}
		if slices.Contains(out, f) {
			return nil, fmt.Errorf("format %q listed twice", f)
		}
		out = append(out, f)
	}
	if !slices.Contains(out, FormatJPEG) {
		return nil, fmt.Errorf("must list jpeg, the base every client decodes (PNG for sources with alpha)")
	}
	return out, nil
}

// Profile names the variant set a configuration makes: the names and
// boxes of the variants, their formats and the base format. An image
// records the profile it was made with; the backfill re-processes the
// images whose profile differs from the configured one. Encoder settings
// (quality, effort) are not part of it: changing them applies to new
// images only.
func (c Config) Profile() string {
	var b strings.Builder
	for _, s := range c.Variants {
		b.WriteString(s.Name + ":" + strconv.Itoa(s.Width) + "x" + strconv.Itoa(s.Height) + ",")
	}
	b.WriteString("|")
	formats := slices.Clone(c.Formats)
	slices.Sort(formats) // a set: "webp,jpeg" makes what "jpeg,webp" makes
	for _, f := range formats {
		b.WriteString(string(f) + ",")
	}
	b.WriteString("|" + c.OutputFormat)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:6])
}
