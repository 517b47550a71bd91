package main

import (
	"context"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imagesvc/imagesvc/pkg/client"
)

func (c *cli) lsCommand() *cobra.Command {
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List your images, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageError{fmt.Errorf("--limit must be at least 1, not %d", limit)}
			}
			s, err := c.session()
			if err != nil {
				return err
			}
			var images []client.Image
			var cursor *string
			for {
				page := min(limit-len(images), 100)
				if all {
					page = 100
				}
				r, err := s.ListImagesWithResponse(cmd.Context(), &client.ListImagesParams{Limit: &page, Cursor: cursor})
				if err != nil {
					return err
				}
				if r.JSON200 == nil {
					return client.ErrorOf(r.HTTPResponse, r.Body)
				}
				images = append(images, r.JSON200.Items...)
				cursor = r.JSON200.NextCursor
				if cursor == nil || (!all && len(images) >= limit) {
					break
				}
			}
			if c.json {
				return c.printJSON(images)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tSIZE\tBYTES\tCREATED\tFILENAME")
			for _, img := range images {
				fmt.Fprintf(tw, "%s\t%s\t%dx%d\t%d\t%s\t%s\n", img.Id, statusText(&img), img.Width, img.Height,
					img.Bytes, img.CreatedAt.Local().Format("2006-01-02 15:04"), img.Filename)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many to list")
	cmd.Flags().BoolVar(&all, "all", false, "list every image")
	return cmd
}

// statusText is the status, with the reason when failed.
func statusText(img *client.Image) string {
	if img.Status == client.ImageStatusFailed && img.Error != nil {
		return "failed (" + img.Error.Code + ")"
	}
	return string(img.Status)
}

func (c *cli) getCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show an image and its variants",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			img, err := c.image(cmd.Context(), s, args[0], wait)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(img)
			}
			c.printImage(img)
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the image is done or failed")
	return cmd
}

// image gets an image, once it is done or failed if wait is set.
func (c *cli) image(ctx context.Context, s *client.Session, id string, wait bool) (*client.Image, error) {
	if wait {
		return s.WaitForImage(ctx, id, nil)
	}
	r, err := s.GetImageWithResponse(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	if r.JSON200 == nil {
		return nil, client.ErrorOf(r.HTTPResponse, r.Body)
	}
	return r.JSON200, nil
}

func (c *cli) printImage(img *client.Image) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", img.Id)
	fmt.Fprintf(tw, "status\t%s\n", img.Status)
	if img.Error != nil {
		fmt.Fprintf(tw, "error\t%s: %s\n", img.Error.Code, img.Error.Message)
	}
	fmt.Fprintf(tw, "file\t%s (%s, %d bytes, %dx%d)\n", img.Filename, img.ContentType, img.Bytes, img.Width, img.Height)
	fmt.Fprintf(tw, "created\t%s\n", img.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	for _, v := range img.Variants {
		fmt.Fprintf(tw, "variant %s\t%dx%d %s, %d bytes\n", v.Name, v.Width, v.Height, v.ContentType, v.Bytes)
	}
	tw.Flush()
}

func (c *cli) downloadCommand() *cobra.Command {
	var variants []string
	var dir string
	var wait bool
	cmd := &cobra.Command{
		Use:   "download ID",
		Short: "Download an image's variants",
		Long: "Download an image's variants (all of them, or those named by --variant)\n" +
			"into a directory, as NAME-VARIANT.EXT after the uploaded file's name.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			img, err := c.image(cmd.Context(), s, args[0], wait)
			if err != nil {
				return err
			}
			if img.Status != client.ImageStatusDone {
				return fmt.Errorf("image %s is %s: it has no variants yet (--wait waits for it)", img.Id, statusText(img))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			type saved struct {
				Variant     string `json:"variant"`
				Path        string `json:"path"`
				Bytes       int64  `json:"bytes"`
				Width       int    `json:"width"`
				Height      int    `json:"height"`
				ContentType string `json:"content_type"`
			}
			var out []saved
			for _, v := range img.Variants {
				if len(variants) > 0 && !slices.Contains(variants, v.Name) {
					continue
				}
				path := filepath.Join(dir, variantFileName(img, v))
				n, err := c.downloadTo(cmd.Context(), s, v, path)
				if err != nil {
					return err
				}
				out = append(out, saved{v.Name, path, n, v.Width, v.Height, v.ContentType})
				if !c.json {
					c.say("%s\t%dx%d\t%d bytes", path, v.Width, v.Height, n)
				}
			}
			if len(out) == 0 {
				return fmt.Errorf("image %s has no variant named %s", img.Id, strings.Join(variants, ", "))
			}
			if c.json {
				return c.printJSON(out)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&variants, "variant", nil, "only this variant (small, medium, large); repeatable")
	cmd.Flags().StringVarP(&dir, "output", "o", ".", "directory to write into")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the image is done or failed")
	return cmd
}

// downloadTo writes a variant to path, through a temporary file so that
// a failed download leaves nothing half-written under that name.
func (c *cli) downloadTo(ctx context.Context, s *client.Session, v client.Variant, path string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	n, err := s.Download(ctx, v, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if n != v.Bytes {
		return n, fmt.Errorf("download %s: %d bytes, the image says %d", v.Name, n, v.Bytes)
	}
	return n, os.Rename(f.Name(), path)
}

// variantFileName is the uploaded name without its extension (or the id),
// the variant's name, and the extension of its type.
func variantFileName(img *client.Image, v client.Variant) string {
	base := strings.TrimSuffix(filepath.Base(img.Filename), filepath.Ext(img.Filename))
	if base == "" || base == "." || base == ".." {
		base = img.Id
	}
	ext := ".bin"
	switch v.ContentType {
	case "image/jpeg":
		ext = ".jpg"
	default:
		if exts, _ := mime.ExtensionsByType(v.ContentType); len(exts) > 0 {
			ext = exts[0]
		}
	}
	return base + "-" + v.Name + ext
}

func (c *cli) rmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID...",
		Short: "Delete images, with their variants",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := c.session()
			if err != nil {
				return err
			}
			var deleted []string
			for _, id := range args {
				r, err := s.DeleteImageWithResponse(cmd.Context(), id)
				if err == nil && r.StatusCode() != 204 {
					err = client.ErrorOf(r.HTTPResponse, r.Body)
				}
				if err != nil {
					return fmt.Errorf("delete %s: %w", id, err)
				}
				deleted = append(deleted, id)
				if !c.json {
					c.say("deleted %s", id)
				}
			}
			if c.json {
				return c.printJSON(map[string][]string{"deleted": deleted})
			}
			return nil
		},
	}
}
