//go:build noquickstart

package quickstart

import "errors"

// ErrDisabled is what every start of an embedded server returns in a binary
// built with the tag noquickstart.
var ErrDisabled = errors.New("this binary was built without the quickstart (build tag noquickstart)")

// Available reports whether this binary can run the quickstart: built with
// the tag noquickstart, it cannot.
func Available() error { return ErrDisabled }

// Redis stands in for the embedded Redis-protocol server, which this binary
// does not have.
type Redis struct{}

// StartRedis fails: this binary has no embedded Redis.
func StartRedis() (*Redis, error) { return nil, ErrDisabled }

// URL is empty.
func (*Redis) URL() string { return "" }

// Close does nothing.
func (*Redis) Close() {}

// S3 stands in for the embedded S3-protocol server, which this binary does
// not have.
type S3 struct{}

// StartS3 fails: this binary has no embedded S3 server.
func StartS3(dir, addr string) (*S3, error) { return nil, ErrDisabled }

// URL is empty.
func (*S3) URL() string { return "" }

// Close does nothing.
func (*S3) Close() {}
