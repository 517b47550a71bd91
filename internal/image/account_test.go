package image_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/mock"
)

// store is a bucket and the rows of two users, on fakes that can be made
// to fail: what a test of an account's removal needs to see what was left.
type store struct {
	objects   map[string]bool
	images    map[string]string // image id -> user id
	uploads   map[string]*image.PendingUpload
	multipart map[string]bool // multipart uploads in progress, by S3 upload id
	// deletesLeft is how many objects S3 deletes before it fails; -1 is
	// no limit.
	deletesLeft int
	// abortFails and rowsFail make the next abort or image-row deletion
	// fail, once.
	abortFails, rowsFail bool
}

const (
	doomedUser = "01900000-0000-7000-8000-0000000000d1"
	otherUser  = "01900000-0000-7000-8000-0000000000d2"
)

func newStore() *store {
	s := &store{objects: map[string]bool{}, images: map[string]string{}, uploads: map[string]*image.PendingUpload{},
		multipart: map[string]bool{}, deletesLeft: -1}
	for _, user := range []string{doomedUser, otherUser} {
		for i := range 3 {
			id := fmt.Sprintf("%s-img%d", user[len(user)-2:], i)
			s.images[id] = user
			s.objects[image.OriginalKey(user, id)] = true
			for _, v := range []string{"small", "medium", "large"} {
				s.objects[image.VariantPrefix(user, id)+v+".jpg"] = true
			}
		}
		// A multipart upload with parts sent (they are no objects yet), a
		// single PUT whose object landed, and an object of a request that
		// was still running when the account was closed.
		mp := &image.PendingUpload{ID: user[len(user)-2:] + "-up1", UserID: user, Kind: image.UploadMultipart,
			State: image.UploadPending, S3UploadID: "s3-" + user, Key: image.OriginalKey(user, user[len(user)-2:]+"-up1")}
		put := &image.PendingUpload{ID: user[len(user)-2:] + "-up2", UserID: user, Kind: image.UploadPut,
			State: image.UploadCompleting, Key: image.OriginalKey(user, user[len(user)-2:]+"-up2")}
		s.uploads[mp.ID], s.uploads[put.ID] = mp, put
		s.multipart[mp.S3UploadID] = true
		s.objects[put.Key] = true
		s.objects[image.OriginalKey(user, "in-flight")] = true
	}
	return s
}

func (s *store) purger() *image.Purger {
	blobs := &mock.Blobs{DeletePrefixFn: func(_ context.Context, prefix string) error {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range s.objects {
				if strings.HasPrefix(k, prefix) && !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			if s.deletesLeft == 0 {
				return errors.New("connection reset by peer")
			}
			if s.deletesLeft > 0 {
				s.deletesLeft--
			}
			delete(s.objects, k)
		}
		return nil
	}}
	staging := &mock.Staging{AbortMultipartFn: func(_ context.Context, _, uploadID string) error {
		if s.abortFails {
			s.abortFails = false
			return errors.New("503 SlowDown")
		}
		delete(s.multipart, uploadID)
		return nil
	}}
	holdings := &mock.Holdings{
		UnfinishedUploadsFn: func(_ context.Context, userID string) ([]*image.PendingUpload, error) {
			var out []*image.PendingUpload
			for _, u := range s.uploads {
				if u.UserID == userID && (u.State == image.UploadPending || u.State == image.UploadCompleting) {
					c := *u
					out = append(out, &c)
				}
			}
			return out, nil
		},
		MoveUploadFn: func(_ context.Context, id, from, to string) (bool, error) {
			if u := s.uploads[id]; u != nil && u.State == from {
				u.State = to
				return true, nil
			}
			return false, nil
		},
		DeleteUserImagesFn: func(_ context.Context, userID string, limit int) (int, error) {
			if s.rowsFail {
				s.rowsFail = false
				return 0, errors.New("database is unavailable")
			}
			n := 0
			for id, owner := range s.images {
				if owner == userID && n < limit {
					delete(s.images, id)
					n++
				}
			}
			return n, nil
		},
	}
	return image.NewPurger(holdings, staging, blobs)
}

// left describes what the store still holds of a user.
func (s *store) left(user string) string {
	var out []string
	for k := range s.objects {
		if strings.Contains(k, "/"+user+"/") {
			out = append(out, "object "+k)
		}
	}
	for id, owner := range s.images {
		if owner == user {
			out = append(out, "image row "+id)
		}
	}
	for _, u := range s.uploads {
		if u.UserID == user && u.State != image.UploadAborted {
			out = append(out, "upload "+u.ID+" "+u.State)
		}
	}
	if s.multipart["s3-"+user] {
		out = append(out, "multipart upload in progress")
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// TestPurgeUser: removing a user's images, uploads and objects, stopped at
// any point (S3 failing after each object deleted in turn, an abort
// refused, the database down), leaves the rest to the next call, which
// finishes it; the other user keeps everything.
func TestPurgeUser(t *testing.T) {
	ctx := context.Background()
	before := newStore().left(otherUser)
	objects := 0
	for k := range newStore().objects {
		if strings.Contains(k, "/"+doomedUser+"/") {
			objects++
		}
	}
	type interruption struct {
		name  string
		apply func(*store)
	}
	var cases []interruption
	for n := range objects {
		cases = append(cases, interruption{fmt.Sprintf("S3FailsAfter%dDeletes", n), func(s *store) { s.deletesLeft = n }})
	}
	cases = append(cases,
		interruption{"AbortFails", func(s *store) { s.abortFails = true }},
		interruption{"DatabaseDown", func(s *store) { s.rowsFail = true }})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore()
			p := s.purger()
			tt.apply(s)
			if err := p.PurgeUser(ctx, doomedUser); err == nil {
				t.Fatal("PurgeUser with a dependency failing = nil, want its error")
			}
			if s.left(doomedUser) == "" {
				t.Fatal("nothing left after a purge that stopped: the interruption came too late to test anything")
			}
			s.deletesLeft = -1
			if err := p.PurgeUser(ctx, doomedUser); err != nil {
				t.Fatalf("PurgeUser again = %v", err)
			}
			if left := s.left(doomedUser); left != "" {
				t.Errorf("left after the second call: %s", left)
			}
			if after := s.left(otherUser); after != before {
				t.Errorf("the other user's holdings changed:\n%s\nwere\n%s", after, before)
			}
		})
	}
	t.Run("ErrBadUserID", func(t *testing.T) {
		s := newStore()
		for _, id := range []string{"", "a/b"} {
			if err := s.purger().PurgeUser(ctx, id); err == nil {
				t.Errorf("PurgeUser(%q) = nil, want a refusal", id)
			}
		}
		if len(s.objects) != len(newStore().objects) {
			t.Error("a refused purge deleted objects")
		}
	})
}
