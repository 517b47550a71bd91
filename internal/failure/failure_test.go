package failure_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/imagesvc/imagesvc/internal/failure"
)

func TestIs(t *testing.T) {
	sentinel := failure.New(failure.Unprocessable, "too_many_pixels", "the image has more pixels than allowed")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Itself", sentinel, true},
		{"SameKindAndCodeOwnMessage", failure.New(failure.Unprocessable, "too_many_pixels", "the image is 9000x9000"), true},
		{"Wrapped", fmt.Errorf("inspect upload: %w", failure.New(failure.Unprocessable, "too_many_pixels", "x")), true},
		{"WithCause", failure.Wrap(failure.Unprocessable, "too_many_pixels", "x", errors.New("cause")), true},
		{"OtherCode", failure.New(failure.Unprocessable, "too_complex", "x"), false},
		{"OtherKind", failure.New(failure.Invalid, "too_many_pixels", "x"), false},
		{"Plain", errors.New("too_many_pixels: the image has more pixels than allowed"), false},
		{"Nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, sentinel); got != tt.want {
				t.Errorf("errors.Is(%v, too_many_pixels) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
	t.Run("TypedNilTarget", func(t *testing.T) {
		var target *failure.Error
		if errors.Is(sentinel, target) {
			t.Errorf("errors.Is(too_many_pixels, (*Error)(nil)) = true, want false")
		}
	})
}
