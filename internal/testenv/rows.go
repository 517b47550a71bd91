package testenv

import (
	"strings"
	"testing"

	"gorm.io/gorm"
)

// RowsMentioning counts, per table, the rows of db with a text column
// that contains needle (as a whole value or inside one, such as an object
// key): a test's way to check that nothing names a deleted user, in every
// table there is, including tables added after the test was written.
// Tables without such rows are left out of the map.
func RowsMentioning(tb testing.TB, db *gorm.DB, needle string) map[string]int64 {
	tb.Helper()
	tables, err := db.Migrator().GetTables()
	if err != nil {
		tb.Fatal(err)
	}
	found := map[string]int64{}
	for _, table := range tables {
		if table == "schema_migrations" {
			continue
		}
		cols, err := db.Migrator().ColumnTypes(table)
		if err != nil {
			tb.Fatal(err)
		}
		var conds []string
		var args []any
		for _, c := range cols {
			t := strings.ToUpper(c.DatabaseTypeName())
			if strings.Contains(t, "CHAR") || strings.Contains(t, "TEXT") || strings.Contains(t, "BLOB") {
				conds = append(conds, "`"+c.Name()+"` LIKE ?")
				args = append(args, "%"+needle+"%")
			}
		}
		if len(conds) == 0 {
			continue
		}
		var n int64
		if err := db.Table(table).Where(strings.Join(conds, " OR "), args...).Count(&n).Error; err != nil {
			tb.Fatalf("count rows of %s: %v", table, err)
		}
		if n > 0 {
			found[table] = n
		}
	}
	return found
}
