package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// longPoll is the wait WaitForImage asks for: the API's maximum.
const longPoll = 60 * time.Second

// Final reports whether an image's status is final: done or failed.
func (img *Image) Final() bool {
	return img.Status == ImageStatusDone || img.Status == ImageStatusFailed
}

// WaitForImage returns the image once it is done or failed, or the
// context's error when ctx ends first. It asks with the long poll
// (GET /v1/images/{id}?wait=60s), again and again, so it learns of the
// outcome at once without polling. Against a server without the long
// poll, which answers at once, it polls with a growing pause (200 ms up to
// 5 s). A 429 or 503 with Retry-After (too many waiting at once, a
// dependency down) is waited out and asked again. changed, when not nil, is called with each answer whose status
// differs from the one before.
func (s *Session) WaitForImage(ctx context.Context, id string, changed func(*Image)) (*Image, error) {
	wait := longPoll.String()
	pause := 200 * time.Millisecond
	var last ImageStatus
	for {
		asked := time.Now()
		r, err := s.GetImageWithResponse(ctx, id, &GetImageParams{Wait: &wait})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("get image %s: %w", id, err)
		}
		if r.JSON200 == nil {
			err := ErrorOf(r.HTTPResponse, r.Body)
			var e *APIError
			if errors.As(err, &e) && e.RetryAfter > 0 && (e.Status == 429 || e.Status == 503) {
				// Too many waiting at once, or a dependency blinked.
				select {
				case <-time.After(e.RetryAfter):
					continue
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return nil, err
		}
		img := r.JSON200
		if img.Status != last && changed != nil {
			changed(img)
		}
		last = img.Status
		if img.Final() {
			return img, nil
		}
		// A long poll answers early only when the image is final; an early
		// answer that is not means the server does not wait.
		if time.Since(asked) > longPoll/2 {
			continue
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pause = min(pause*2, 5*time.Second)
	}
}
