package image

import "time"

// Document is the public JSON form of an image, the one clients read from
// the API and receive in webhooks.
type Document struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Bytes       int64             `json:"bytes"`
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	Variants    []VariantDocument `json:"variants"`
	Error       *ErrorDocument    `json:"error"`
	CreatedAt   string            `json:"created_at"`
	UpdatedAt   string            `json:"updated_at"`
}

// VariantDocument is the public JSON form of a variant.
type VariantDocument struct {
	Name        string `json:"name"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Bytes       int64  `json:"bytes"`
	ContentType string `json:"content_type"`
	URL         string `json:"url"`
}

// ErrorDocument says why an image failed.
type ErrorDocument struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewDocument returns the public form of img. Variant URLs are those the
// image carries (see Service.Get); variants are listed only once done.
func NewDocument(img *Image) Document {
	d := Document{
		ID: img.ID, Status: string(img.Status), Filename: img.Filename, ContentType: img.ContentType,
		Bytes: img.Bytes, Width: img.Width, Height: img.Height, Variants: []VariantDocument{},
		CreatedAt: img.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: img.UpdatedAt.UTC().Format(time.RFC3339),
	}
	if img.Status == StatusDone {
		for _, v := range img.Variants {
			d.Variants = append(d.Variants, VariantDocument{Name: v.Name, Width: v.Width, Height: v.Height,
				Bytes: v.Bytes, ContentType: v.ContentType, URL: v.URL})
		}
	}
	if img.Status == StatusFailed {
		d.Error = &ErrorDocument{Code: img.ErrorCode, Message: img.ErrorMessage}
	}
	return d
}
