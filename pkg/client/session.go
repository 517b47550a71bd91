package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// Session is the API as one logged-in user: the generated client
// (ClientWithResponses' methods), sending an access token from a
// TokenSource with every request, plus uploads with progress, waiting for
// an image and the event stream.
type Session struct {
	*ClientWithResponses
	server string
	http   HttpRequestDoer
	tokens *TokenSource
}

// NewSession returns a Session on server whose requests carry the access
// tokens of tokens. httpClient, when not nil, sends them; it must not have
// a Timeout shorter than a long poll (a minute) or it cuts the event
// stream: bound calls with their contexts instead.
func NewSession(server string, tokens *TokenSource, httpClient HttpRequestDoer) (*Session, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	s := &Session{server: server, http: httpClient, tokens: tokens}
	api, err := NewClientWithResponses(server, WithHTTPClient(authorizing{next: httpClient, tokens: tokens}))
	if err != nil {
		return nil, err
	}
	s.ClientWithResponses = api
	return s, nil
}

// Tokens returns the session's token source.
func (s *Session) Tokens() *TokenSource { return s.tokens }

// authorizing sends each request with a valid access token. A token the
// API refuses before its expiry (clocks apart, a secret rotated) is
// refreshed and the request sent once more, when its body can be sent
// again.
type authorizing struct {
	next   HttpRequestDoer
	tokens *TokenSource
}

func (a authorizing) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	token, err := a.tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.next.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, err
	}
	// Only a refused access token is worth a refresh (logout's
	// invalid_refresh_token is a 401 too).
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if !IsCode(ErrorOf(resp, body), "invalid_token") {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	if token, err = a.tokens.Refresh(ctx, token); err != nil {
		return nil, err
	}
	again := req.Clone(ctx)
	if req.GetBody != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	again.Header.Set("Authorization", "Bearer "+token)
	return a.next.Do(again)
}

// Download writes the content at a variant's URL (presigned: it needs no
// token, and gets none) to w, and returns the bytes written.
func (s *Session) Download(ctx context.Context, v Variant, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.Url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", v.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download %s: %s", v.Name, resp.Status)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download %s: %w", v.Name, err)
	}
	return n, nil
}
