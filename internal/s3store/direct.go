package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/imagesvc/imagesvc/internal/image"
)

// Uploads straight from clients: presigned PUTs and multipart uploads.

var _ image.Staging = (*Store)(nil)

// PresignPut implements image.Staging. Content-Length and Content-Type are
// signed: a PUT of other bytes than declared is refused by the server.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType string, expiry time.Duration) (string, error) {
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, ContentLength: aws.Int64(size), ContentType: aws.String(contentType),
	}, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("presign put %s: %w", key, err)
	}
	return req.URL, nil
}

// CreateMultipart implements image.Staging.
func (s *Store) CreateMultipart(ctx context.Context, key, contentType string) (string, error) {
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, ContentType: aws.String(contentType),
	})
	if err != nil {
		return "", fmt.Errorf("create multipart upload %s: %w", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// PresignPart implements image.Staging; the part's size is signed.
func (s *Store) PresignPart(ctx context.Context, key, uploadID string, part int32, size int64, expiry time.Duration) (string, error) {
	req, err := s.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket: &s.bucket, Key: &key, UploadId: &uploadID, PartNumber: aws.Int32(part), ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("presign part %d of %s: %w", part, key, err)
	}
	return req.URL, nil
}

// ListParts implements image.Staging.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]image.Part, error) {
	var parts []image.Part
	p := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list parts of %s: %w", key, err)
		}
		for _, pt := range page.Parts {
			parts = append(parts, image.Part{
				Number: aws.ToInt32(pt.PartNumber), ETag: aws.ToString(pt.ETag), Size: aws.ToInt64(pt.Size),
			})
		}
	}
	slices.SortFunc(parts, func(a, b image.Part) int { return int(a.Number - b.Number) })
	return parts, nil
}

// CompleteMultipart implements image.Staging.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []image.Part) error {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	if isCode(err, "InvalidPart") || isCode(err, "InvalidPartOrder") || isCode(err, "EntityTooSmall") || isCode(err, "MalformedXML") {
		return fmt.Errorf("complete multipart upload %s: %w: %w", key, image.ErrBadParts, err)
	}
	if err != nil {
		return fmt.Errorf("complete multipart upload %s: %w", key, err)
	}
	return nil
}

// AbortMultipart implements image.Staging. An upload the server no longer
// knows is aborted already.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
	})
	var nsu *types.NoSuchUpload
	if err != nil && !errors.As(err, &nsu) && !isCode(err, "NoSuchUpload") {
		return fmt.Errorf("abort multipart upload %s: %w", key, err)
	}
	return nil
}

// Open implements image.Staging.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) || isCode(err, "NoSuchKey") {
		return nil, 0, image.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// SetCORS lets pages of origins send uploads straight to the bucket and read
// what they need of the answers (a part's ETag); empty removes the rules.
// It replaces the bucket's CORS configuration.
func (s *Store) SetCORS(ctx context.Context, origins []string) error {
	if len(origins) == 0 {
		_, err := s.client.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: &s.bucket})
		if err != nil {
			return fmt.Errorf("delete bucket cors: %w", err)
		}
		return nil
	}
	_, err := s.client.PutBucketCors(ctx, &s3.PutBucketCorsInput{
		Bucket: &s.bucket,
		CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{
			AllowedOrigins: origins,
			AllowedMethods: []string{"GET", "HEAD", "PUT"},
			AllowedHeaders: []string{"Content-Type"},
			ExposeHeaders:  []string{"ETag"},
			MaxAgeSeconds:  aws.Int32(3600),
		}}},
	})
	if err != nil {
		return fmt.Errorf("put bucket cors: %w", err)
	}
	return nil
}
