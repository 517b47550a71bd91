package gormstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/mattn/go-sqlite3"
	"gorm.io/gorm"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// errUnavailable is the domain's word for a database that cannot answer
// now: every route maps it to 503 with Retry-After, whichever store method
// met it.
func errUnavailable(err error) error {
	return failure.Wrap(failure.Unavailable, "database_unavailable", "the database is unavailable", err)
}

// MySQL server errors that say "try again", not "your query is wrong".
const (
	erTooManyConnections = 1040
	erLockWaitTimeout    = 1205
	erDeadlock           = 1213
	erConnectionKilled   = 1927
)

// unreachable reports whether err means the database could not be asked
// or could not answer now: a connection refused, reset or timed out, a
// server that went away or is overloaded, a lock that could not be had.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var me *gomysql.MySQLError
	var se sqlite3.Error
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, gomysql.ErrInvalidConn),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	case errors.As(err, &me):
		switch me.Number {
		case erTooManyConnections, erLockWaitTimeout, erDeadlock, erConnectionKilled:
			return true
		}
	case errors.As(err, &se):
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return false
}

// deadlocked reports whether a transaction lost a deadlock (MySQL rolled
// it back, and running it again is the remedy).
func deadlocked(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == erDeadlock
}

// classifyErrors makes every statement's error that means "unavailable"
// a failure of kind Unavailable, in one place for every store method.
func classifyErrors(db *gorm.DB) error {
	classify := func(tx *gorm.DB) {
		if unreachable(tx.Error) && failure.As(tx.Error) == nil {
			tx.Error = errUnavailable(tx.Error)
		}
	}
	cb := db.Callback()
	return errors.Join(
		cb.Create().After("*").Register("imagesvc:classify", classify),
		cb.Query().After("*").Register("imagesvc:classify", classify),
		cb.Update().After("*").Register("imagesvc:classify", classify),
		cb.Delete().After("*").Register("imagesvc:classify", classify),
		cb.Row().After("*").Register("imagesvc:classify", classify),
		cb.Raw().After("*").Register("imagesvc:classify", classify),
	)
}

// transaction runs fn in a transaction, again (up to three times in all)
// when MySQL picks it as a deadlock's victim: two refreshes of one token at
// once deadlocked on the token's index and answered 500. A begin that fails
// (the database is down) is unavailable, like any statement's.
func (s *Store) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for range 3 {
		err = s.db.WithContext(ctx).Transaction(fn)
		if !deadlocked(err) {
			break
		}
	}
	if unreachable(err) && failure.As(err) == nil {
		return errUnavailable(fmt.Errorf("transaction: %w", err))
	}
	return err
}
