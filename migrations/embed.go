// Package migrations holds the numbered SQL migrations of the MySQL schema,
// embedded so that the binaries can apply them at start.
package migrations

import "embed"

// MySQL is the set of MySQL/MariaDB migrations, in golang-migrate naming
// (NNNNNN_name.up.sql / .down.sql).
//
//go:embed mysql/*.sql
var MySQL embed.FS
