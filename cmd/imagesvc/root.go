package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imagesvc/imagesvc/pkg/client"
)

// env is the command's world: its streams and environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// cli holds what every command shares: the streams, the global flags,
// the credentials.
type cli struct {
	env
	server string
	json   bool
	creds  *credentialsFile
}

const defaultServer = "http://localhost:8080"

// exitError carries an exit status other than 1 (and no message of its
// own: the command has said what went wrong).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run is the whole program; it returns the exit status: 0, 1 on an error
// (or an upload that failed), 2 on a usage error.
func run(ctx context.Context, args []string, e env) int {
	c := &cli{env: e}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "imagesvc: %v\n", err)
		return 2
	}
	fmt.Fprintf(e.stderr, "imagesvc: %v\n", err)
	if errors.Is(err, client.ErrLoggedOut) {
		fmt.Fprintln(e.stderr, "run: imagesvc login --email EMAIL")
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ error }

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "imagesvc",
		Short: "Upload images to imagesvc, wait for their variants, download them",
		Long: "imagesvc is the command-line client of the imagesvc API.\n\n" +
			"The server is --server, else IMAGESVC_SERVER, else " + defaultServer + ".\n" +
			"Log in once (imagesvc login --email E); the tokens are kept in your\n" +
			"configuration directory and refreshed as needed.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if c.server == "" {
				c.server = c.getenv("IMAGESVC_SERVER")
			}
			if c.server == "" {
				c.server = defaultServer
			}
			c.server = strings.TrimRight(c.server, "/")
			creds, err := newCredentialsFile()
			c.creds = creds
			return err
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&c.server, "server", "", "API base URL (default $IMAGESVC_SERVER, else "+defaultServer+")")
	root.PersistentFlags().BoolVar(&c.json, "json", false, "print machine-readable JSON on stdout, and nothing else there")
	root.AddCommand(c.signupCommand(), c.loginCommand(), c.logoutCommand(),
		c.uploadCommand(), c.lsCommand(), c.getCommand(), c.downloadCommand(), c.rmCommand(),
		c.webhooksCommand(), c.accountCommand())
	return root
}

// session returns the API as the logged-in user of c.server.
func (c *cli) session() (*client.Session, error) {
	l, ok, err := c.creds.get(c.server)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w (no credentials for %s)", client.ErrLoggedOut, c.server)
	}
	tokens, err := client.NewTokenSource(c.server, l.TokenSet, serverTokens{file: c.creds, server: c.server, email: l.Email})
	if err != nil {
		return nil, err
	}
	return client.NewSession(c.server, tokens, nil)
}

// printJSON writes v on stdout as indented JSON.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// say writes a line for people: on stdout, or on stderr when stdout is
// for JSON.
func (c *cli) say(format string, args ...any) {
	w := c.stdout
	if c.json {
		w = c.stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// terminal reports whether w is a terminal.
func terminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// exactArgs is cobra.ExactArgs with the error a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
