package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imagesvc/imagesvc/pkg/client"
)

func (c *cli) webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage webhooks: signed POSTs when your images are done or failed",
	}
	cmd.AddCommand(c.webhookCreateCommand(), c.webhookListCommand(), c.webhookRemoveCommand(),
		c.webhookDeliveriesCommand(), c.webhookRedeliverCommand(), c.webhookPingCommand())
	return cmd
}

func (c *cli) webhookCreateCommand() *cobra.Command {
	var url string
	var events []string
	cmd := &cobra.Command{
		Use:   "create --url URL",
		Short: "Subscribe a URL to image events; prints the signing secret (shown only now)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			body := client.CreateWebhookJSONRequestBody{Url: url}
			for _, e := range events {
				body.Events = append(body.Events, client.SubscriptionRequestEvents(e))
			}
			r, err := s.CreateWebhookWithResponse(cmd.Context(), body)
			if err != nil {
				return err
			}
			if r.JSON201 == nil {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if c.json {
				return c.printJSON(r.JSON201)
			}
			secret := ""
			if r.JSON201.Secret != nil {
				secret = *r.JSON201.Secret
			}
			c.say("webhook %s: %s for %s\nsecret %s (keep it: it is not shown again)",
				r.JSON201.Id, r.JSON201.Url, strings.Join(r.JSON201.Events, ", "), secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "where to POST the events")
	cmd.Flags().StringSliceVar(&events, "events", []string{"image.processed", "image.failed"}, "events to send")
	cmd.MarkFlagRequired("url")
	return cmd
}

func (c *cli) webhookListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List your webhooks",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.ListWebhooksWithResponse(cmd.Context())
			if err != nil {
				return err
			}
			if r.JSON200 == nil {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if c.json {
				return c.printJSON(r.JSON200.Items)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tENABLED\tEVENTS\tURL")
			for _, w := range r.JSON200.Items {
				enabled := "yes"
				if !w.Enabled && w.DisabledReason != nil {
					enabled = "no (" + *w.DisabledReason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.Id, enabled, strings.Join(w.Events, ","), w.Url)
			}
			return tw.Flush()
		},
	}
}

func (c *cli) webhookRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID",
		Short: "Delete a webhook",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.DeleteWebhookWithResponse(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if r.StatusCode() != 204 {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if c.json {
				return c.printJSON(map[string]string{"deleted": args[0]})
			}
			c.say("deleted webhook %s", args[0])
			return nil
		},
	}
}

func (c *cli) webhookDeliveriesCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "deliveries ID",
		Short: "List a webhook's deliveries, newest first",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.ListWebhookDeliveriesWithResponse(cmd.Context(), args[0], &client.ListWebhookDeliveriesParams{Limit: &limit})
			if err != nil {
				return err
			}
			if r.JSON200 == nil {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if c.json {
				return c.printJSON(r.JSON200.Items)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tATTEMPTS\tLAST\tCREATED")
			for _, d := range r.JSON200.Items {
				last := ""
				if d.LastStatus != nil {
					last = fmt.Sprint(*d.LastStatus)
				}
				if d.LastError != nil {
					last += " " + *d.LastError
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.Id, d.Type, d.State, d.Attempts, strings.TrimSpace(last),
					d.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "how many (at most 100)")
	return cmd
}

func (c *cli) webhookRedeliverCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "redeliver ID DELIVERY_ID",
		Short: "Send a delivery again, with the same webhook-id",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.RedeliverWebhookWithResponse(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if r.JSON202 == nil {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			if c.json {
				return c.printJSON(r.JSON202)
			}
			c.say("delivery %s is %s again", r.JSON202.Id, r.JSON202.State)
			return nil
		},
	}
}

func (c *cli) webhookPingCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ping ID",
		Short: "Send a webhook.ping event now and show the answer",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			r, err := s.PingWebhookWithResponse(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if r.JSON200 == nil {
				return client.ErrorOf(r.HTTPResponse, r.Body)
			}
			p := r.JSON200
			if c.json {
				return c.printJSON(p)
			}
			switch {
			case p.Error != nil:
				c.say("no answer after %.2fs: %s", p.Seconds, *p.Error)
			case p.StatusCode != nil:
				c.say("answered %d in %.2fs", *p.StatusCode, p.Seconds)
			}
			return nil
		},
	}
}
