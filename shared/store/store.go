// Package store is smoothcast's only way to S3: a small wrapper around the
// aws-sdk-go-v2 S3 client with conditional writes, ranged reads and typed
// errors, used the same way against AWS, any S3-compatible server and the
// embedded server of the local stack. Reads, listings and deletes go
// through the SDK's client; writes, the relay's hot path, go out as one
// net/http request built from the SDK's endpoint resolver, signer,
// credentials and retryer, without its per-request middleware (direct.go).
package store

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
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Typed errors. Callers test them with errors.Is.
var (
	// ErrNotFound: no object at that key.
	ErrNotFound = errors.New("object not found")
	// ErrPreconditionFailed: a conditional write lost (the object exists,
	// or its ETag changed).
	ErrPreconditionFailed = errors.New("precondition failed")
)

// Cache-Control values for what the bucket holds.
const (
	// CacheImmutable is for fragments and init segments: their bytes never
	// change under a key.
	CacheImmutable = "public, max-age=31536000, immutable"
	// CacheNone is for internal state.
	CacheNone = "no-store"
)

// PutOptions are the optional parts of a write.
type PutOptions struct {
	ContentType  string
	CacheControl string
	// IfNoneMatch writes only if no object exists at the key.
	IfNoneMatch bool
	// IfMatch writes only if the object's ETag is this value.
	IfMatch string
	// Metadata becomes x-amz-meta-* headers.
	Metadata map[string]string
	// Tagging is the object's tag set, URL-encoded (key1=value1&key2=...):
	// lifecycle rules select on tags.
	Tagging string
}

// Object is what a read returns.
type Object struct {
	Body        []byte
	ETag        string
	ContentType string
	Metadata    map[string]string
	// Size is the object's whole size (for a ranged read, more than len(Body)).
	Size int64
}

// Store reads and writes objects of one bucket.
type Store struct {
	Client *s3.Client
	Bucket string
	// SDKWrites sends Put and PutParts through Client's PutObject, as
	// reads and deletes go, instead of the direct path (one net/http
	// request signed with the SDK's signer, which spends 80 µs less CPU
	// per write). New sets it when the bucket's endpoint wants what the
	// direct path does not speak: a signature other than SigV4 (S3
	// Express directory buckets, multi-region access points). Tests and
	// benchmarks set it to compare the two.
	SDKWrites bool
	direct    *direct
	// putOptions apply to every PutObject.
	putOptions []func(*s3.Options)
}

// Config says how to reach the bucket.
type Config struct {
	Bucket string
	Region string
	// Endpoint, when set, is an S3-compatible endpoint (path-style
	// addressing). Empty means AWS.
	Endpoint string
	// AccessKey and SecretKey, when set, are static credentials (for a local
	// or S3-compatible endpoint). Empty means the default AWS chain.
	AccessKey, SecretKey string
	// HTTPClient overrides the SDK's HTTP client.
	HTTPClient *http.Client
}

// New builds a Store from cfg.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("store: bucket name is empty")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		// S3 answers 503 SlowDown under load: retry throttling and 5xx a
		// few more times than the SDK's default, without the client-side
		// retry quota, which a burst of throttling would drain and then
		// fail every request at once. Callers bound the total with their
		// context.
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 5
			so.MaxBackoff = 2 * time.Second // live media cannot wait 20 s
			so.RateLimiter = ratelimit.None
		})
		// Checksums only where an operation requires one (DeleteObjects).
		// The SDK's default would send every PUT aws-chunked with a CRC32
		// trailer, copying each body into chunks and summing it: a PUT
		// needs none, conditional or not. Over TLS, as on AWS, the bytes
		// are protected in transit already (the body goes as
		// UNSIGNED-PAYLOAD), and S3 keeps a CRC64NVME checksum of every
		// object uploaded without one. S3-compatible servers (the
		// embedded one among them) may not take trailer checksums either.
		// Without it the relay spends 5 % less CPU per GB over TLS
		// (BENCHMARKS.md §1).
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	st := &Store{Client: client, Bucket: cfg.Bucket}
	if strings.HasPrefix(cfg.Endpoint, "http://") {
		// Over plain HTTP SigV4 would hash every body (SHA-256, a third of
		// the relay's CPU). The endpoint is local or on a private network;
		// send UNSIGNED-PAYLOAD, as the SDK does over TLS (and as the
		// direct path does everywhere).
		st.putOptions = append(st.putOptions, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		})
	}
	if st.direct, err = newDirect(ctx, client.Options(), cfg.Bucket); err != nil {
		// What the direct path does not speak, the SDK does.
		st.SDKWrites = true
	}
	return st, nil
}

// Put writes body at key and returns the new ETag.
func (s *Store) Put(ctx context.Context, key string, body []byte, o PutOptions) (string, error) {
	return s.PutParts(ctx, key, [][]byte{body}, o)
}

// PutParts writes the concatenation of parts at key without joining them
// in memory, and returns the new ETag.
func (s *Store) PutParts(ctx context.Context, key string, parts [][]byte, o PutOptions) (string, error) {
	var etag string
	var err error
	if s.SDKWrites || s.direct == nil {
		etag, err = s.sdkPut(ctx, key, parts, o)
	} else {
		etag, err = s.direct.put(ctx, key, parts, o)
	}
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, classify(err))
	}
	return etag, nil
}

// sdkPut writes with the SDK's PutObject.
func (s *Store) sdkPut(ctx context.Context, key string, parts [][]byte, o PutOptions) (string, error) {
	var body io.ReadSeeker
	var size int64
	if len(parts) == 1 {
		body, size = bytes.NewReader(parts[0]), int64(len(parts[0]))
	} else {
		r := newPartsReader(parts)
		body, size = r, r.size
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.Bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
		Metadata:      o.Metadata,
	}
	if o.ContentType != "" {
		in.ContentType = aws.String(o.ContentType)
	}
	if o.CacheControl != "" {
		in.CacheControl = aws.String(o.CacheControl)
	}
	if o.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if o.IfMatch != "" {
		in.IfMatch = aws.String(o.IfMatch)
	}
	if o.Tagging != "" {
		in.Tagging = aws.String(o.Tagging)
	}
	out, err := s.Client.PutObject(ctx, in, s.putOptions...)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// Get reads the whole object at key.
func (s *Store) Get(ctx context.Context, key string) (Object, error) {
	return s.get(ctx, key, "")
}

// GetRange reads bytes [first, last] of the object at key (fewer if the
// object is shorter).
func (s *Store) GetRange(ctx context.Context, key string, first, last int64) (Object, error) {
	return s.get(ctx, key, fmt.Sprintf("bytes=%d-%d", first, last))
}

func (s *Store) get(ctx context.Context, key, rng string) (Object, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := s.Client.GetObject(ctx, in)
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, classify(err))
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return Object{}, fmt.Errorf("get %s: read body: %w", key, err)
	}
	obj := Object{
		Body:        body,
		ETag:        aws.ToString(out.ETag),
		ContentType: aws.ToString(out.ContentType),
		Metadata:    out.Metadata,
		Size:        aws.ToInt64(out.ContentLength),
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			var total int64
			if _, err := fmt.Sscan(cr[i+1:], &total); err == nil {
				obj.Size = total
			}
		}
	}
	return obj, nil
}

// Open streams the object at key: the caller must close the body.
func (s *Store) Open(ctx context.Context, key string) (*s3.GetObjectOutput, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, classify(err))
	}
	return out, nil
}

// classify maps S3 answers onto the package's typed errors, keeping the
// original in the chain.
func classify(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
		}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case http.StatusPreconditionFailed, http.StatusConflict:
			return fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
		}
	}
	return err
}

// Listed is one object of a listing.
type Listed struct {
	Key      string
	Size     int64
	Modified time.Time
}

// List calls fn for every object under prefix, a page (up to 1000 keys)
// at a time. Only the retention janitor lists: the serving path never does.
func (s *Store) List(ctx context.Context, prefix string, fn func([]Listed) error) error {
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, classify(err))
		}
		objs := make([]Listed, 0, len(page.Contents))
		for _, o := range page.Contents {
			objs = append(objs, Listed{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
		if err := fn(objs); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes keys (at most 1000: one DeleteObjects request).
func (s *Store) Delete(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	out, err := s.Client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.Bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
	if err != nil {
		return fmt.Errorf("delete %d objects: %w", len(keys), classify(err))
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return fmt.Errorf("delete %d objects: %d failed, first %s: %s", len(keys), len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Message))
	}
	return nil
}
