package s3store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	tuss3 "github.com/tus/tusd/v2/pkg/s3store"
)

// TusObjectPrefix is where tus uploads land: an upload whose tus object id
// is "{user_id}/{image_id}" is written straight to the image's original key
// (image.OriginalKey), so completing it moves no bytes. tusd's .info and
// .part objects sit beside it, under the same prefix.
const TusObjectPrefix = "originals/"

// TusStore returns tusd's S3 store on this bucket. tmpDir holds the parts
// being received ("" is the system's); each upload buffers at most a few
// 5 MiB parts there.
func (s *Store) TusStore(tmpDir string) tuss3.S3Store {
	st := tuss3.New(s.bucket, s.client)
	st.ObjectPrefix = TusObjectPrefix
	st.MetadataObjectPrefix = TusObjectPrefix
	st.MinPartSize = 5 << 20
	st.PreferredPartSize = 5 << 20
	st.MaxBufferedParts = 4
	st.TemporaryDirectory = tmpDir
	st.SetConcurrentPartUploads(8)
	return st
}

// AbortMultipartUploads implements image.Staging: every multipart upload in
// progress under key is aborted.
func (s *Store) AbortMultipartUploads(ctx context.Context, key string) error {
	ids, err := s.MultipartUploads(ctx, key)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.AbortMultipart(ctx, key, id); err != nil {
			return err
		}
	}
	return nil
}

// ClearUploadState implements image.Staging: tusd's .info and .part
// objects beside an upload's object go.
func (s *Store) ClearUploadState(ctx context.Context, key string) error {
	return s.DeletePrefix(ctx, key+".")
}

// MultipartUploads lists the ids of the multipart uploads in progress under
// key; tests and operators use it to look for leftovers.
func (s *Store) MultipartUploads(ctx context.Context, key string) ([]string, error) {
	var ids []string
	p := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &key})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list multipart uploads %s: %w", key, err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) == key {
				ids = append(ids, aws.ToString(u.UploadId))
			}
		}
	}
	return ids, nil
}
