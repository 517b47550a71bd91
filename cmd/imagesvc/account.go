package main

import (
	"errors"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imagesvc/imagesvc/pkg/client"
)

func (c *cli) accountCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Show your account and what it stores against the quota",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.GetAccountWithResponse(cmd.Context())
			if err != nil {
				return err
			}
			if r.JSON200 == nil {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if c.json {
				return c.printJSON(r.JSON200)
			}
			a := r.JSON200
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "id\t%s\n", a.Id)
			fmt.Fprintf(tw, "email\t%s\n", a.Email)
			fmt.Fprintf(tw, "role\t%s\n", a.Role)
			fmt.Fprintf(tw, "created\t%s\n", a.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			fmt.Fprintf(tw, "images\t%d%s\n", a.Usage.Images, ofQuota(a.Quota.Images))
			fmt.Fprintf(tw, "bytes\t%d%s\n", a.Usage.Bytes, ofQuota(a.Quota.Bytes))
			fmt.Fprintf(tw, "unfinished uploads\t%d\n", a.Usage.PendingUploads)
			return tw.Flush()
		},
	}
	cmd.AddCommand(c.accountDeleteCommand())
	return cmd
}

// ofQuota says what a usage is out of.
func ofQuota(bound *int64) string {
	if bound == nil {
		return " (no quota)"
	}
	return fmt.Sprintf(" of %d", *bound)
}

func (c *cli) accountDeleteCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete --yes",
		Short: "Delete your account and everything it holds, for good",
		Long: "Delete your account: its images and their variants, unfinished uploads,\n" +
			"webhooks and sessions. It cannot be undone. The password is read from the\n" +
			"terminal without echo, or from IMAGESVC_PASSWORD; --yes says you mean it.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return usageError{errors.New("deleting the account cannot be undone: add --yes")}
			}
			l, ok, err := c.creds.get(c.server)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w (no credentials for %s)", client.ErrLoggedOut, c.server)
			}
			password, err := c.password(false)
			if err != nil {
				return err
			}
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.DeleteAccountWithResponse(cmd.Context(), client.DeleteAccountJSONRequestBody{Password: password})
			if err != nil {
				return err
			}
			// 202: closed at once, the rest removed by the server within
			// minutes.
			state, said := "deleted", "deleted"
			switch r.StatusCode() {
			case http.StatusNoContent:
			case http.StatusAccepted:
				state, said = "closed", "closed; what it held is being removed"
			default:
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if err := c.creds.put(c.server, nil); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]string{"server": c.server, "email": l.Email, "status": state})
			}
			c.say("account %s on %s %s", l.Email, c.server, said)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm that the account and everything it holds are to be deleted")
	return cmd
}
