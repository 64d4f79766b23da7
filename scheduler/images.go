package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// imageRef names result image n (0-based) of a succeeded job: the images
// of the attempt whose succeed script was accepted.
func imageRef(j *Job, n int) (blob.Ref, error) {
	if j.Status != StatusSucceeded || n < 0 || n >= j.Images {
		return blob.Ref{}, storage.ErrNotFound
	}
	return blob.Ref{Job: j.ID, Attempt: j.ImageAttempt, Name: strconv.Itoa(n)}, nil
}

// previewRef names the preview an Event.Preview ("<attempt>-<step>") names.
func previewRef(jobID, name string) (blob.Ref, error) {
	a, rest, ok := strings.Cut(name, "-")
	attempt, err := strconv.Atoi(a)
	if !ok || err != nil || !namePattern.MatchString(rest) || !namePattern.MatchString(jobID) {
		return blob.Ref{}, storage.ErrNotFound
	}
	return blob.Ref{Job: jobID, Attempt: attempt, Name: "p" + rest}, nil
}

// Image returns result image n (0-based) of a succeeded job, whole.
func (s *Scheduler) Image(ctx context.Context, j *Job, n int) ([]byte, error) {
	ref, err := imageRef(j, n)
	if err != nil {
		return nil, err
	}
	return blob.ReadAll(ctx, s.store.Blobs, ref)
}

// OpenImage opens result image n of a succeeded job for streaming; the
// caller closes it. The ETag never changes for a given image.
func (s *Scheduler) OpenImage(ctx context.Context, j *Job, n int) (*blob.Object, string, error) {
	ref, err := imageRef(j, n)
	if err != nil {
		return nil, "", err
	}
	o, err := s.store.Blobs.Open(ctx, ref)
	return o, ref.ETag(), err
}

// ImageURL is a presigned URL of result image n when the image store hands
// them out (storage.blobs.presign), else blob.ErrNoPresign.
func (s *Scheduler) ImageURL(ctx context.Context, j *Job, n int) (*url.URL, error) {
	ref, err := imageRef(j, n)
	if err != nil {
		return nil, err
	}
	return s.store.Blobs.PresignGet(ctx, ref)
}

// Preview returns a preview image named by an Event.Preview, whole. Only a
// running attempt's latest preview is kept: an older name is not found.
func (s *Scheduler) Preview(ctx context.Context, jobID, name string) ([]byte, error) {
	ref, err := previewRef(jobID, name)
	if err != nil {
		return nil, err
	}
	return blob.ReadAll(ctx, s.store.Blobs, ref)
}

// OpenPreview opens a preview named by an Event.Preview for streaming.
func (s *Scheduler) OpenPreview(ctx context.Context, jobID, name string) (*blob.Object, string, error) {
	ref, err := previewRef(jobID, name)
	if err != nil {
		return nil, "", err
	}
	o, err := s.store.Blobs.Open(ctx, ref)
	return o, ref.ETag(), err
}

// Info returns a succeeded job's info text: from the record, or from the
// blob store beside its images when it was too long for the record.
func (s *Scheduler) Info(ctx context.Context, j *Job) (string, error) {
	if !j.infoStored {
		return j.Info, nil
	}
	b, err := blob.ReadAll(ctx, s.store.Blobs, blob.Ref{Job: j.ID, Attempt: j.ImageAttempt, Name: infoBlobName})
	if err != nil {
		return "", fmt.Errorf("info: %w", err)
	}
	return string(b), nil
}

// initImageName is the blob name of a job's init image: attempt 0, as it
// is written at submit, before any attempt.
const initImageName = "init"

func initImageRef(jobID string) blob.Ref {
	return blob.Ref{Job: jobID, Attempt: 0, Name: initImageName}
}

// ErrInitImageGone is returned by Lease.InitImage when the job's init image
// is missing from the blob store (swept, or removed by hand): the job
// cannot run, and retrying will not bring it back.
var ErrInitImageGone = errors.New("the job's init image is gone from the image store")

// InitImage reads the init image the job's submit kept in the blob store
// (SubmitRequest.InitImage).
func (l *Lease) InitImage(ctx context.Context) ([]byte, error) {
	return l.s.InitImage(ctx, l.JobID)
}

// InitImage reads a job's init image from the blob store, for a request
// made again from it (a reroll or variation of an img2img job).
func (s *Scheduler) InitImage(ctx context.Context, jobID string) ([]byte, error) {
	if !namePattern.MatchString(jobID) {
		return nil, ErrNotFound
	}
	b, err := blob.ReadAll(ctx, s.store.Blobs, initImageRef(jobID))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("init image: %w", ErrInitImageGone)
	}
	if err != nil {
		return nil, fmt.Errorf("init image: %w", err)
	}
	return b, nil
}
