package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// guardian decides which addresses a webhook may reach: any port, but no
// address in the IANA special-purpose registries (loopback, private,
// shared, link-local and cloud metadata, documentation, benchmarking,
// multicast, reserved…) and no IPv6 address outside global unicast, which
// takes in unique-local, link-local, IPv4-mapped and zoned addresses
// ("[fe80::1%eth0]": a zoned address is in no prefix, so a deny list that
// asked "is it in a blocked prefix?" let it through). The registries are
// code.dny.dev/ssrf's, generated from IANA's, rather than a list kept by
// hand here.
var guardian = ssrf.New(ssrf.WithAnyPort())

// Internal reports whether ip is an address a webhook may not reach.
func Internal(ip netip.Addr) bool {
	return guardian.SafeAddr(ip) != nil
}

// errInternal is returned by the dialer for a blocked address.
var errInternal = errors.New("connection to an internal address refused")

// Client sends webhook requests.
type Client struct {
	http         *http.Client
	allowPrivate bool
	resolver     *net.Resolver
	userAgent    string
}

// Timeouts of one delivery attempt.
const (
	ConnectTimeout = 5 * time.Second
	TotalTimeout   = 10 * time.Second
	maxResponse    = 64 << 10
)

// NewClient returns a client that never follows redirects, ignores proxy
// settings in the environment, and (unless allowPrivate) refuses to connect
// to an internal address: the check runs on the address actually dialled,
// after DNS resolution, so a name that changes its answer (DNS rebinding)
// gets nowhere.
func NewClient(allowPrivate bool, version string) *Client {
	c := &Client{allowPrivate: allowPrivate, resolver: net.DefaultResolver, userAgent: "imagesvc-webhooks/" + version}
	dialer := &net.Dialer{
		Timeout: ConnectTimeout,
		Control: func(network, address string, c syscall.RawConn) error {
			if allowPrivate {
				return nil
			}
			if err := guardian.Safe(network, address, c); err != nil {
				return fmt.Errorf("%w: %v", errInternal, err)
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   ConnectTimeout,
		ResponseHeaderTimeout: TotalTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
	}
	c.http = &http.Client{
		Transport: transport,
		Timeout:   TotalTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 3xx is an answer, and a failure
		},
	}
	return c
}

// CheckURL validates a subscription URL: http or https, no credentials, at
// most 2048 characters, and (unless private addresses are allowed) a host
// whose every address is public.
func (c *Client) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > 2048 {
		return ErrBadURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Hostname() == "" {
		return ErrBadURL
	}
	if c.allowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if Internal(ip) {
			return ErrForbiddenURL
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	addrs, err := c.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return ErrUnresolvedURL
	}
	for _, a := range addrs {
		if Internal(a) {
			return ErrForbiddenURL
		}
	}
	return nil
}

// Result is the outcome of one attempt.
type Result struct {
	Status     int           // 0 when no response came
	RetryAfter time.Duration // from a 429 or 503
	Err        error         // transport error
	Duration   time.Duration
}

// Post sends one signed message.
func (c *Client) Post(ctx context.Context, target, id string, ts time.Time, body []byte, signatures string) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Result{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", fmt.Sprint(ts.Unix()))
	req.Header.Set("webhook-signature", signatures)
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, errInternal) {
			err = errInternal
		}
		return Result{Err: err, Duration: time.Since(start)}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	r := Result{Status: resp.StatusCode, Duration: time.Since(start)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var secs int
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
