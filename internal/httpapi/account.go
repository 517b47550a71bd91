package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/auth"
)

type accountResponse struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt string    `json:"created_at"`
	Usage     usageJSON `json:"usage"`
	Quota     quotaJSON `json:"quota"`
}

type usageJSON struct {
	Images         int64 `json:"images"`
	Bytes          int64 `json:"bytes"`
	PendingUploads int   `json:"pending_uploads"`
}

// quotaJSON says null for no bound: 0 would read as "nothing allowed".
type quotaJSON struct {
	Images *int64 `json:"images"`
	Bytes  *int64 `json:"bytes"`
}

func bound(n int64) *int64 {
	if n <= 0 {
		return nil
	}
	return &n
}

func (s *Server) getAccount(c echo.Context) error {
	u, _ := c.Get(accountKey).(*auth.User) // requireAuth read it
	r, err := s.Images.Usage(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, accountResponse{
		ID: u.ID, Email: u.Email, Role: u.Role, CreatedAt: rfc3339(u.CreatedAt),
		Usage: usageJSON{Images: r.Stored.Images, Bytes: r.Stored.Bytes, PendingUploads: r.PendingUploads},
		Quota: quotaJSON{Images: bound(r.Quota.Images), Bytes: bound(r.Quota.Bytes)},
	})
}

type deleteAccountRequest struct {
	Password string `json:"password"`
}

func (s *Server) deleteAccount(c echo.Context) error {
	userID := principal(c).UserID
	var req deleteAccountRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	// Someone holding a stolen access token could guess the password
	// here: attempts are bounded like logins, per account, and per
	// address together with that address's logins.
	if err := s.limit(c, "login:addr:"+c.RealIP(), s.cfg.LoginRatePerMinutePerAddress); err != nil {
		return err
	}
	if err := s.limit(c, "account-delete:"+userID, s.cfg.LoginRatePerMinute); err != nil {
		return err
	}
	done, err := s.Accounts.Delete(c.Request().Context(), userID, req.Password)
	if err != nil {
		return err
	}
	if !done {
		return c.NoContent(http.StatusAccepted)
	}
	return c.NoContent(http.StatusNoContent)
}
