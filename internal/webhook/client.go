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
)

// Internal address ranges a webhook may not reach unless private addresses
// are allowed. IPv4-mapped IPv6 addresses are unmapped before the check.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // private
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),  // private
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // private
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 of any IPv4, internal included
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// Internal reports whether ip is an address a webhook may not reach.
func Internal(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range blocked {
		if p.Contains(ip) {
			return true
		}
	}
	return false
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
		Control: func(_, address string, _ syscall.RawConn) error {
			if allowPrivate {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil || Internal(ap.Addr()) {
				return errInternal
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
