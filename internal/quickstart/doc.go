// Package quickstart runs, inside the API process, the dependencies a
// newcomer does not have: a Redis-protocol server (miniredis, in memory) and
// an S3-protocol server (gofakes3, objects in files under the data
// directory), both on loopback. The SQL side is an SQLite file, opened by
// internal/gormstore. The same asynq and S3 client code runs against them
// as against the real servers; only the endpoints differ.
//
// Built with the tag noquickstart (the container image is), the package
// links neither server: disabled.go takes the place of quickstart.go and every
// start fails with ErrDisabled.
package quickstart
