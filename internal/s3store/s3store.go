// Package s3store implements image.Blobs on any S3-protocol server with
// aws-sdk-go-v2: AWS itself, or a self-hosted gateway with path-style URLs.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/imagesvc/imagesvc/internal/image"
)

// Config holds the object storage settings.
type Config struct {
	// Endpoint is the server URL; empty means AWS.
	Endpoint string
	// PublicEndpoint, when set, is the server URL as browsers reach it,
	// which presigned URLs are made for (the signature covers the host,
	// so an internal one cannot be rewritten later); empty means Endpoint.
	PublicEndpoint string
	Region         string
	Bucket         string
	ForcePathStyle bool
	// AccessKeyID and SecretAccessKey, when set, override the AWS chain.
	AccessKeyID     string
	SecretAccessKey string
	// MaxConns bounds the connections to the server.
	MaxConns int
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config {
	return Config{Region: "us-east-1", Bucket: "images", MaxConns: 64}
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("S3_BUCKET is required"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("S3_REGION is required"))
	}
	if c.PublicEndpoint != "" && !strings.HasPrefix(c.PublicEndpoint, "http://") && !strings.HasPrefix(c.PublicEndpoint, "https://") {
		errs = append(errs, errors.New("S3_PUBLIC_ENDPOINT must be an http:// or https:// URL"))
	}
	return errors.Join(errs...)
}

// Store is an S3 bucket.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

var _ image.Blobs = (*Store)(nil)

// New returns a Store for cfg.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = cfg.MaxConns
		t.MaxConnsPerHost = cfg.MaxConns
	})
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 3 })
		}),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	options := func(endpoint string) func(o *s3.Options) {
		return func(o *s3.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
			o.UsePathStyle = cfg.ForcePathStyle
			// Self-hosted S3 servers differ in their support for the flexible
			// checksums the SDK now sends by default; send them only when the
			// operation requires one.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}
	client := s3.NewFromConfig(awsCfg, options(cfg.Endpoint))
	// Presigning is computed here, not sent: a client for the public
	// endpoint signs URLs for browsers without ever connecting to it.
	presigner := client
	if cfg.PublicEndpoint != "" {
		presigner = s3.NewFromConfig(awsCfg, options(cfg.PublicEndpoint))
	}
	return &Store{client: client, presign: s3.NewPresignClient(presigner), bucket: cfg.Bucket}, nil
}

// EnsureBucket creates the bucket if it does not exist.
func (s *Store) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	var apiErr smithy.APIError
	if !errors.As(err, &nf) && !(errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket") {
		return fmt.Errorf("head bucket %s: %w", s.bucket, err)
	}
	_, err = s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Ping checks that the bucket answers.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	return err
}

// Put implements image.Blobs.
func (s *Store) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: body,
		ContentLength: aws.Int64(size), ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutVariant implements image.Blobs.
func (s *Store) PutVariant(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: body,
		ContentLength: aws.Int64(size), ContentType: aws.String(contentType),
		CacheControl: aws.String(image.VariantCacheControl),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Delete implements image.Blobs.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

// Head returns the Content-Type and Cache-Control an object was stored
// with; tests check variants with it.
func (s *Store) Head(ctx context.Context, key string) (contentType, cacheControl string, err error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return "", "", fmt.Errorf("head %s: %w", key, err)
	}
	return aws.ToString(out.ContentType), aws.ToString(out.CacheControl), nil
}

// Get implements image.Blobs.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	buf.Grow(int(aws.ToInt64(out.ContentLength)))
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

// DeletePrefix implements image.Blobs.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		// One DeleteObject per key: DeleteObjects needs a Content-MD5 or
		// checksum that not every S3 server accepts, and an image has few
		// objects.
		for _, obj := range page.Contents {
			if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: obj.Key}); err != nil {
				return fmt.Errorf("delete %s: %w", aws.ToString(obj.Key), err)
			}
		}
	}
	return nil
}

// PresignGet implements image.Blobs.
func (s *Store) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return req.URL, nil
}

// Keys lists every key under prefix; tests and operators use it to look for
// orphans.
func (s *Store) Keys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, obj := range page.Contents {
			keys = append(keys, aws.ToString(obj.Key))
		}
	}
	return keys, nil
}

// DeleteBucket removes the (empty) bucket; tests use it to clean up.
func (s *Store) DeleteBucket(ctx context.Context) error {
	_, err := s.client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &s.bucket})
	return err
}
