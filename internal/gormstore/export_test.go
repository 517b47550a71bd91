package gormstore

import "gorm.io/gorm"

// DB is the store's database, for tests that look at every table.
func DB(s *Store) *gorm.DB { return s.db }
