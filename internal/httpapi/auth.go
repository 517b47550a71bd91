package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/auth"
)

type credentialsRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type userResponse struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) signup(c echo.Context) error {
	var req credentialsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "signup:addr:"+c.RealIP(), s.cfg.SignupRatePerMinutePerAddress); err != nil {
		return err
	}
	u, err := s.Auth.Signup(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, userResponse{ID: u.ID, Email: u.Email, CreatedAt: rfc3339(u.CreatedAt)})
}

func (s *Server) login(c echo.Context) error {
	var req credentialsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "login:addr:"+c.RealIP(), s.cfg.LoginRatePerMinutePerAddress); err != nil {
		return err
	}
	// Per email and address, hashed so that Redis holds no email
	// addresses: a stranger failing on an email locks it only for their
	// own address.
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(req.Email)) + "\x00" + c.RealIP()))
	if err := s.limit(c, "login:email:"+hex.EncodeToString(sum[:16]), s.cfg.LoginRatePerMinute); err != nil {
		return err
	}
	t, err := s.Auth.Login(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokens(t))
}

func (s *Server) refresh(c echo.Context) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := s.Auth.Refresh(c.Request().Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokens(t))
}

func (s *Server) logout(c echo.Context) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.Auth.Logout(c.Request().Context(), principal(c).UserID, req.RefreshToken); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func tokens(t auth.Tokens) tokenResponse {
	return tokenResponse{AccessToken: t.AccessToken, TokenType: "Bearer",
		ExpiresIn: int(t.ExpiresIn / time.Second), RefreshToken: t.RefreshToken}
}
