package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imagesvc/imagesvc/pkg/client"
)

func (c *cli) signupCommand() *cobra.Command {
	var email string
	cmd := &cobra.Command{
		Use:   "signup --email EMAIL",
		Short: "Create an account, then log in",
		Long: "Create an account, then log in. The password is read from the terminal\n" +
			"(twice, without echo), or from IMAGESVC_PASSWORD for scripts.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := c.password(true)
			if err != nil {
				return err
			}
			u, err := client.Signup(cmd.Context(), c.server, email, password)
			if err != nil {
				return err
			}
			return c.logIn(cmd, u.Email, password)
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "the account's email address")
	cmd.MarkFlagRequired("email")
	return cmd
}

func (c *cli) loginCommand() *cobra.Command {
	var email string
	cmd := &cobra.Command{
		Use:   "login --email EMAIL",
		Short: "Log in and keep the tokens",
		Long: "Log in and keep the tokens in your configuration directory. The password\n" +
			"is read from the terminal without echo, or from IMAGESVC_PASSWORD.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := c.password(false)
			if err != nil {
				return err
			}
			return c.logIn(cmd, email, password)
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "the account's email address")
	cmd.MarkFlagRequired("email")
	return cmd
}

func (c *cli) logIn(cmd *cobra.Command, email, password string) error {
	t, err := client.Login(cmd.Context(), c.server, email, password)
	if err != nil {
		return err
	}
	if err := c.creds.put(c.server, &login{Email: email, TokenSet: t}); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]string{"server": c.server, "email": email})
	}
	c.say("logged in to %s as %s", c.server, email)
	return nil
}

func (c *cli) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session and forget its tokens",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, ok, err := c.creds.get(c.server)
			if err != nil || !ok {
				return err
			}
			s, err := c.session()
			if err != nil {
				return err
			}
			// Revoke the refresh token the session holds after any refresh.
			r, err := s.LogoutWithResponse(cmd.Context(), client.LogoutJSONRequestBody{RefreshToken: s.Tokens().Tokens().RefreshToken})
			if err == nil && r.StatusCode() != 204 {
				err = client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if err != nil && !errors.Is(err, client.ErrLoggedOut) {
				fmt.Fprintf(c.stderr, "imagesvc: the server did not revoke the session (%v); forgetting it anyway\n", err)
			}
			if err := c.creds.put(c.server, nil); err != nil {
				return err
			}
			c.say("logged out %s from %s", l.Email, c.server)
			return nil
		},
	}
}

// password reads the password from IMAGESVC_PASSWORD, else from the
// terminal without echo (twice when confirm is set).
func (c *cli) password(confirm bool) (string, error) {
	if p := c.getenv("IMAGESVC_PASSWORD"); p != "" {
		return p, nil
	}
	in, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("no terminal to read the password from: set IMAGESVC_PASSWORD")
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(c.stderr, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(c.stderr)
		return strings.TrimRight(string(b), "\r\n"), err
	}
	p, err := read("Password: ")
	if err != nil || !confirm {
		return p, err
	}
	again, err := read("Password again: ")
	if err != nil {
		return "", err
	}
	if again != p {
		return "", errors.New("the passwords differ")
	}
	return p, nil
}
