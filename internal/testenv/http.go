package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
)

// Call makes one HTTP request to a running API and fails the test unless
// the answer has status want; it returns the body.
func Call(tb testing.TB, method, url, token, contentType string, body io.Reader, want int) []byte {
	tb.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		tb.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	return b
}

// Multipart returns a multipart/form-data body with data as its "file"
// field, and its content type.
func Multipart(filename string, data []byte) (string, *bytes.Buffer) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// Upload posts data to a running API's /v1/images, requires 202 and returns
// the image id.
func Upload(tb testing.TB, base, token string, data []byte) string {
	tb.Helper()
	ct, body := Multipart("upload.jpg", data)
	var img struct{ ID string }
	json.Unmarshal(Call(tb, http.MethodPost, base+"/v1/images", token, ct, body, http.StatusAccepted), &img)
	return img.ID
}

// Password is the password the helpers sign test users up with.
const Password = "correct horse battery"

// Signup creates an account with Password on a running API, requiring 201.
func Signup(tb testing.TB, base, email string) {
	tb.Helper()
	Call(tb, http.MethodPost, base+"/v1/auth/signup", "", "application/json", credentials(email), http.StatusCreated)
}

// Login logs email in with Password on a running API, requiring 200, and
// returns the access token.
func Login(tb testing.TB, base, email string) string {
	tb.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(Call(tb, http.MethodPost, base+"/v1/auth/login", "", "application/json", credentials(email), http.StatusOK), &tok); err != nil || tok.AccessToken == "" {
		tb.Fatalf("login %s: no access token (%v)", email, err)
	}
	return tok.AccessToken
}

func credentials(email string) io.Reader {
	b, _ := json.Marshal(map[string]string{"email": email, "password": Password})
	return bytes.NewReader(b)
}
