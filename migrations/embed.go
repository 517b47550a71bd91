// Package migrations holds the numbered SQL migrations of the schema, one
// directory per database: mysql/ for production, sqlite/ for the
// quickstart. They are embedded so that the binaries apply them at start.
package migrations

import "embed"

// FS holds mysql/*.sql and sqlite/*.sql in golang-migrate naming
// (NNNNNN_name.up.sql / .down.sql). Every change goes into both.
//
//go:embed mysql/*.sql sqlite/*.sql
var FS embed.FS
