package config

import (
	"strings"
	"unicode/utf8"
)

// placeholderWords mark a sample secret, in any case: a secret holding one
// was copied from a file or a page, not generated.
var placeholderWords = []string{"change-me", "changeme", "change_me", "placeholder", "example", "your-secret"}

// envExampleValues are the values of the repository's .env.example, which
// anyone may read: one of them copied unchanged is no secret. A test keeps
// this list in step with the file.
var envExampleValues = []string{
	"change-me-jwt-secret-use-openssl-rand-base64-48",
	"change-me-mysql-password",
	"change-me-mysql-root-password",
	"change-me-s3-root-access-key",
	"change-me-s3-root-secret-key",
	"change-me-s3-access-key",
	"change-me-s3-secret-key",
	"change-me-admin-password",
	"k1:change-me-delivery-key-use-openssl-rand-base64-32",
}

// placeholder says why v is not a real secret, or returns "".
func placeholder(v string) string {
	lower := strings.ToLower(v)
	for _, w := range placeholderWords {
		if strings.Contains(lower, w) {
			return "it contains " + `"` + w + `"`
		}
	}
	for _, x := range envExampleValues {
		if v == x {
			return "it is the value in .env.example"
		}
	}
	if first, _ := utf8.DecodeRuneInString(v); strings.Trim(v, string(first)) == "" {
		return "it is one character repeated"
	}
	return ""
}
