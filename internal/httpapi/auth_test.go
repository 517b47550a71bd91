package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestSignupAndLogin(t *testing.T) {
	h := newHarness(t)
	creds := map[string]string{"email": "Frank@Example.com", "password": "long enough password"}

	r := h.postJSON("/v1/auth/signup", "", creds)
	if r.Status != http.StatusCreated {
		t.Fatalf("signup: %d %s", r.Status, r.Body)
	}
	var u struct {
		ID        string `json:"id"`
		Email     string `json:"email"`
		CreatedAt string `json:"created_at"`
	}
	r.json(t, &u)
	if u.ID == "" || u.Email != "frank@example.com" || u.CreatedAt == "" || strings.Contains(string(r.Body), "password") {
		t.Errorf("signup answered %s", r.Body)
	}

	for _, tt := range []struct {
		name   string
		body   any
		raw    string
		status int
		code   string
	}{
		{"ErrEmailTaken", map[string]string{"email": "frank@example.com", "password": "another password"}, "", 409, "email_taken"},
		{"ErrWeakPassword", map[string]string{"email": "g@example.com", "password": "short"}, "", 422, "weak_password"},
		{"ErrInvalidEmail", map[string]string{"email": "not an email", "password": "long enough password"}, "", 422, "invalid_email"},
		{"ErrDisplayName", map[string]string{"email": "G <g@example.com>", "password": "long enough password"}, "", 422, "invalid_email"},
		{"ErrMalformedJSON", nil, `{"email":`, 400, "invalid_json"},
		{"ErrNotAnObject", nil, `[1,2]`, 400, "invalid_json"},
		{"ErrHugeBody", nil, `{"email":"` + strings.Repeat("a", 100<<10) + `"}`, 413, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.raw != "" {
				r = h.do(http.MethodPost, "/v1/auth/signup", "", "application/json", strings.NewReader(tt.raw))
			} else {
				r = h.postJSON("/v1/auth/signup", "", tt.body)
			}
			if r.Status != tt.status {
				t.Fatalf("status %d %s, want %d", r.Status, r.Body, tt.status)
			}
			if code := r.errorCode(t); tt.code != "" && code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
		})
	}

	// Unknown email and wrong password: the same answer.
	wrong := h.postJSON("/v1/auth/login", "", map[string]string{"email": "frank@example.com", "password": "wrong password!"})
	unknown := h.postJSON("/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "wrong password!"})
	if wrong.Status != 401 || unknown.Status != 401 || string(wrong.Body) != string(unknown.Body) {
		t.Errorf("wrong password %d %s, unknown email %d %s: want the same 401", wrong.Status, wrong.Body, unknown.Status, unknown.Body)
	}

	r = h.postJSON("/v1/auth/login", "", creds)
	if r.Status != http.StatusOK {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	r.json(t, &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Errorf("login answered %s", r.Body)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok.AccessToken, claims, func(*jwt.Token) (any, error) { return h.secret, nil }); err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != u.ID || claims["role"] != "user" {
		t.Errorf("claims %v, want sub %s role user", claims, u.ID)
	}

	// Refresh rotates: the new token works once, the old one never again.
	r = h.postJSON("/v1/auth/refresh", "", map[string]string{"refresh_token": tok.RefreshToken})
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	var next struct {
		RefreshToken string `json:"refresh_token"`
	}
	r.json(t, &next)
	if r := h.postJSON("/v1/auth/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}); r.Status != 401 {
		t.Errorf("old refresh token: %d, want 401", r.Status)
	}
	// Reusing the old token revoked the whole family, the new one included.
	if r := h.postJSON("/v1/auth/refresh", "", map[string]string{"refresh_token": next.RefreshToken}); r.Status != 401 {
		t.Errorf("refresh after reuse: %d, want 401", r.Status)
	}

	// Logout kills a refresh token.
	r = h.postJSON("/v1/auth/login", "", creds)
	r.json(t, &tok)
	if r := h.postJSON("/v1/auth/logout", tok.AccessToken, map[string]string{"refresh_token": tok.RefreshToken}); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := h.postJSON("/v1/auth/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}); r.Status != 401 {
		t.Errorf("refresh after logout: %d, want 401", r.Status)
	}
}

func TestBadTokens(t *testing.T) {
	h := newHarness(t)
	good := h.user("grace@example.com")
	sub := h.userID(good)
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": sub, "role": "user", "iss": "imagesvc", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	expired := valid()
	expired["exp"] = now.Add(-time.Minute).Unix()
	noExp := valid()
	delete(noExp, "exp")
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"` + sub + `","role":"user","iss":"imagesvc","exp":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `}`))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + payload + "." + parts[2]

	for name, auth := range map[string]string{
		"Missing":      "",
		"NotBearer":    "Basic Z3JhY2U6cGFzcw==",
		"Malformed":    "Bearer not.a.jwt",
		"Expired":      "Bearer " + sign(jwt.SigningMethodHS256, h.secret, expired),
		"NoExpiry":     "Bearer " + sign(jwt.SigningMethodHS256, h.secret, noExp),
		"WrongKey":     "Bearer " + sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-123"), valid()),
		"HS512":        "Bearer " + sign(jwt.SigningMethodHS512, h.secret, valid()),
		"AlgNone":      "Bearer " + header + "." + payload + ".",
		"TamperedBody": "Bearer " + tampered,
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/images", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", resp.StatusCode)
			}
		})
	}
	if r := h.do(http.MethodGet, "/v1/images", good, "", nil); r.Status != http.StatusOK {
		t.Errorf("good token: %d %s", r.Status, r.Body)
	}
	if r := h.do(http.MethodGet, "/v1/images", "Bearer "+sign(jwt.SigningMethodHS256, h.secret, valid()), "", nil); r.Status != 401 {
		// "Bearer Bearer x" is not a token.
		t.Errorf("double Bearer: %d, want 401", r.Status)
	}
}

func TestProbesAndUnknownRoutes(t *testing.T) {
	h := newHarness(t)
	if r := h.do(http.MethodGet, "/healthz", "", "", nil); r.Status != 200 {
		t.Errorf("healthz: %d", r.Status)
	}
	if r := h.do(http.MethodGet, "/readyz", "", "", nil); r.Status != 200 {
		t.Errorf("readyz: %d %s", r.Status, r.Body)
	}
	if r := h.do(http.MethodGet, "/metrics", "", "", nil); r.Status != 200 || !strings.Contains(string(r.Body), "go_goroutines") {
		t.Errorf("metrics: %d", r.Status)
	}
	r := h.do(http.MethodGet, "/v1/nope", "", "", nil)
	if r.Status != 404 {
		t.Errorf("unknown route: %d", r.Status)
	}
	r.errorCode(t)
	r = h.do(http.MethodPut, "/v1/auth/login", "", "", nil)
	if r.Status != 405 {
		t.Errorf("wrong method: %d", r.Status)
	}
	r.errorCode(t)
}
