package testenv

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// TCPProxy forwards connections from a loopback port to a target, and can
// cut them: while cut, it refuses new connections and has closed the open
// ones, as a server that went away would. Tests put it in front of MariaDB
// or Redis to take them "down" without stopping the shared servers.
type TCPProxy struct {
	Addr   string
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	l      net.Listener
}

// NewTCPProxy starts a proxy to target on a free loopback port.
func NewTCPProxy(tb testing.TB, target string) *TCPProxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &TCPProxy{Addr: l.Addr().String(), target: target, conns: map[net.Conn]struct{}{}, l: l}
	go p.serve()
	tb.Cleanup(func() { l.Close(); p.Cut() })
	return p
}

func (p *TCPProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *TCPProxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every open connection and refuses new ones until Restore.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore accepts connections again.
func (p *TCPProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// FlakyHTTP is a reverse proxy that fails a share of requests: half of the
// failures answer 503 SlowDown, the other half reset the connection. Tests
// put it in front of the S3 server.
type FlakyHTTP struct {
	URL      string
	rate     atomic.Uint64 // failure share in parts per 1000
	Failures atomic.Int64
}

// NewFlakyHTTP starts a flaky proxy to target failing rate (0 to 1) of
// requests.
func NewFlakyHTTP(tb testing.TB, target string, rate float64) *FlakyHTTP {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	f := &FlakyHTTP{}
	f.SetRate(rate)
	rp := httputil.NewSingleHostReverseProxy(u)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rand.IntN(1000) < int(f.rate.Load()) {
			f.Failures.Add(1)
			if rand.IntN(2) == 0 {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
				return
			}
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	f.URL = "http://" + l.Addr().String()
	return f
}

// SetRate changes the failure share (0 to 1).
func (f *FlakyHTTP) SetRate(rate float64) { f.rate.Store(uint64(rate * 1000)) }
