package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imagesvc/imagesvc/pkg/client"
)

// credentialsFile holds the tokens of each server the user logged in to,
// in os.UserConfigDir()/imagesvc/credentials.json, mode 0600 in a
// directory of mode 0700.
type credentialsFile struct {
	path string
}

// login is what is kept for one server.
type login struct {
	Email string `json:"email"`
	client.TokenSet
}

type credentialsDoc struct {
	Servers map[string]login `json:"servers"`
}

func newCredentialsFile() (*credentialsFile, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("find the configuration directory: %w", err)
	}
	return &credentialsFile{path: filepath.Join(dir, "imagesvc", "credentials.json")}, nil
}

func (f *credentialsFile) read() (credentialsDoc, error) {
	doc := credentialsDoc{Servers: map[string]login{}}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, fmt.Errorf("%s: %w", f.path, err)
	}
	if doc.Servers == nil {
		doc.Servers = map[string]login{}
	}
	return doc, nil
}

// get returns the login kept for server, if any.
func (f *credentialsFile) get(server string) (login, bool, error) {
	doc, err := f.read()
	l, ok := doc.Servers[server]
	return l, ok, err
}

// put keeps l for server (nil removes it), replacing the file at once so
// that a reader never sees half of it.
func (f *credentialsFile) put(server string, l *login) error {
	doc, err := f.read()
	if err != nil {
		return err
	}
	if l == nil {
		delete(doc.Servers, server)
	} else {
		doc.Servers[server] = *l
	}
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "credentials-*.json") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// serverTokens is the client.TokenStore of one server's entry: refreshed
// tokens are saved as they come, and read back before each refresh.
type serverTokens struct {
	file   *credentialsFile
	server string
	email  string
}

func (s serverTokens) Load() (client.TokenSet, error) {
	l, ok, err := s.file.get(s.server)
	if err != nil || !ok {
		return client.TokenSet{}, err
	}
	return l.TokenSet, nil
}

func (s serverTokens) Save(t client.TokenSet) error {
	return s.file.put(s.server, &login{Email: s.email, TokenSet: t})
}
