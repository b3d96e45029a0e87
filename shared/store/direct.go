package store

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// direct writes an object as one net/http request that carries what the
// SDK's PutObject carries and S3 acts on, made of the SDK's own parts: the
// URL its endpoint resolver gives for the bucket (resolved once), the key
// escaped by its path encoder, its SigV4 signer with S3's rules, its
// credentials cache, the client's HTTP client and retryer, and its error
// types. What it leaves out is the SDK's middleware around them, about 80
// µs of CPU per request (endpoint rules evaluated twice per request, the
// request built and cloned, some 530 allocations): on the relay, which
// writes every fragment, a fifth of its CPU over plain HTTP
// (BENCHMARKS.md §1).
type direct struct {
	http    s3.HTTPClient
	creds   aws.CredentialsProvider
	signer  *v4.Signer
	retryer aws.Retryer
	// base is the bucket's URL: its path ends at the bucket (path-style
	// addressing) or is empty (virtual-hosted).
	base url.URL
	// header holds the endpoint's own headers (S3's rules set none today).
	header http.Header
	// service and region are the signing name and region of the
	// endpoint's SigV4 scheme.
	service, region string
	// continueFrom is the body size from which a write asks for
	// "Expect: 100-continue", as the SDK does; 0 never.
	continueFrom int64
	// skew is the server's clock minus ours, learned when S3 refuses a
	// signature as too far from its time; writes are signed at now+skew.
	// noSkew turns that off (the config's DisableClockSkewCorrection).
	skew   atomic.Int64
	noSkew bool
}

// The SDK's default: bodies of 2 MiB and more go out with
// "Expect: 100-continue" (ContinueHeaderThresholdBytes 0).
const defaultContinueFrom = 2 << 20

// unsignedPayload is the payload hash of a body left out of the
// signature, as the store sends every write (store.New says why).
const unsignedPayload = "UNSIGNED-PAYLOAD"

// newDirect resolves the bucket's endpoint with the client's endpoint
// resolver and the parameters the client binds for PutObject. It fails
// for what the direct path does not speak: an endpoint that wants a
// signature other than SigV4 (S3 Express directory buckets, multi-region
// access points), or no credentials.
func newDirect(ctx context.Context, o s3.Options, bucket string) (*direct, error) {
	if o.Credentials == nil {
		return nil, errors.New("no credentials provider")
	}
	params := s3.EndpointParameters{
		Bucket:                         aws.String(bucket),
		UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:                   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		Endpoint:                       o.BaseEndpoint,
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	}
	if o.Region != "" {
		region := fipsRegionBase(o.Region)
		params.Region = aws.String(region)
		if region != o.Region {
			// As the client does for each operation: a FIPS
			// pseudo-region asks for FIPS endpoints.
			params.UseFIPS = aws.Bool(true)
		}
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("resolve the endpoint of bucket %s: %w", bucket, err)
	}
	d := &direct{
		http:    o.HTTPClient,
		creds:   o.Credentials,
		signer:  v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
		retryer: o.Retryer,
		base:    ep.URI,
		header:  ep.Headers,
		service: "s3",
		region:  o.Region,
		noSkew:  o.DisableClockSkewCorrection,
	}
	// The SDK takes the first scheme the endpoint lists.
	if schemes, ok := smithyauth.GetAuthOptions(&ep.Properties); ok && len(schemes) > 0 {
		s := schemes[0]
		if s.SchemeID != "sigv4" && s.SchemeID != smithyauth.SchemeIDSigV4 {
			return nil, fmt.Errorf("bucket %s wants %s signatures", bucket, s.SchemeID)
		}
		if name, ok := smithyhttp.GetSigV4SigningName(&s.SignerProperties); ok {
			d.service = name
		}
		if region, ok := smithyhttp.GetSigV4SigningRegion(&s.SignerProperties); ok {
			d.region = region
		}
	}
	// As the SDK joins the endpoint's path with the operation's.
	if d.base.RawPath == "" {
		d.base.RawPath = d.base.Path
	}
	switch {
	case o.ContinueHeaderThresholdBytes < 0:
	case o.ContinueHeaderThresholdBytes > 0:
		d.continueFrom = o.ContinueHeaderThresholdBytes
	default:
		d.continueFrom = defaultContinueFrom
	}
	return d, nil
}

// fipsRegionBase is the region of a FIPS pseudo-region ("fips-us-east-1",
// "us-gov-west-1-fips"), as the SDK binds it.
func fipsRegionBase(region string) string {
	if !strings.Contains(region, "fips") {
		return region
	}
	region = strings.ReplaceAll(region, "-fips-", "-")
	region = strings.ReplaceAll(region, "fips-", "")
	return strings.ReplaceAll(region, "-fips", "")
}

// put writes the concatenation of parts at key. It retries as the SDK
// does, with the client's retryer (throttling, 5xx, connections that
// fail before an answer), and wraps failures as the SDK's PutObject does:
// a smithy.OperationError around S3's answer (status, request and host
// IDs, and S3's code and message as a smithy.APIError), or, when nothing
// answered, around an answer of status 0 with the
// smithyhttp.RequestSendError inside.
func (d *direct) put(ctx context.Context, key string, parts [][]byte, o PutOptions) (string, error) {
	if key == "" {
		return "", errors.New("empty key")
	}
	var size int64
	for _, p := range parts {
		size += int64(len(p))
	}
	for attempt := 1; ; attempt++ {
		etag, err := d.attempt(ctx, key, parts, size, o)
		if err == nil {
			return etag, nil
		}
		if !d.retryer.IsErrorRetryable(err) {
			return "", putError(err)
		}
		if most := d.retryer.MaxAttempts(); most > 0 && attempt >= most {
			return "", putError(&retry.MaxAttemptsError{Attempt: attempt, Err: err})
		}
		wait, derr := d.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return "", putError(derr)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", putError(&aws.RequestCanceledError{Err: ctx.Err()})
		case <-t.C:
		}
	}
}

// putError is err as the SDK's PutObject returns it.
func putError(err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: err}
}

// attempt sends one request and reads its answer.
func (d *direct) attempt(ctx context.Context, key string, parts [][]byte, size int64, o PutOptions) (string, error) {
	creds, err := d.creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("retrieve credentials: %w", err)
	}
	req := d.request(ctx, key, parts, size, o)
	skew := time.Duration(d.skew.Load())
	if err := d.signer.SignHTTP(ctx, creds, req, unsignedPayload, d.service, d.region, time.Now().Add(skew)); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		// As the SDK's: an answer of status 0 around the failure to send.
		err = &smithyhttp.RequestSendError{Err: err}
		if ctx.Err() != nil {
			err = &smithy.CanceledError{Err: ctx.Err()}
		}
		return "", answered(&http.Response{Header: http.Header{}, Body: http.NoBody}, err, "", "")
	}
	at := time.Now()
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return "", d.skewed(answerError(resp), resp, at, skew)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return strings.TrimSpace(resp.Header.Get("ETag")), nil
}

// request builds the PutObject request as the SDK's serializer does:
// the key in the path, escaped as smithy's path encoder escapes a greedy
// label, joined to the endpoint's path; the headers S3 acts on, with the
// SDK's names and defaults; the body read from the parts, resendable
// (GetBody), never joined.
func (d *direct) request(ctx context.Context, key string, parts [][]byte, size int64, o PutOptions) *http.Request {
	u := d.base
	u.Path = smithyhttp.JoinPath(d.base.Path, "/"+key)
	u.RawPath = smithyhttp.JoinPath(d.base.RawPath, "/"+httpbinding.EscapePath(key, false))
	u.RawQuery = "x-id=PutObject"
	h := make(http.Header, 12+len(o.Metadata))
	for k, v := range d.header {
		h[k] = v
	}
	h["Content-Type"] = []string{"application/octet-stream"}
	if o.ContentType != "" {
		h["Content-Type"] = []string{o.ContentType}
	}
	if o.CacheControl != "" {
		h["Cache-Control"] = []string{o.CacheControl}
	}
	if o.IfNoneMatch {
		h["If-None-Match"] = []string{"*"}
	}
	if o.IfMatch != "" {
		h["If-Match"] = []string{o.IfMatch}
	}
	if o.Tagging != "" {
		h["X-Amz-Tagging"] = []string{o.Tagging}
	}
	for k, v := range o.Metadata {
		h["X-Amz-Meta-"+strings.TrimSpace(http.CanonicalHeaderKey(k))] = []string{v}
	}
	h["X-Amz-Content-Sha256"] = []string{unsignedPayload}
	if d.continueFrom > 0 && size >= d.continueFrom {
		h["Expect"] = []string{"100-continue"}
	}
	req := &http.Request{
		Method:        http.MethodPut,
		URL:           &u,
		Header:        h,
		Host:          u.Host,
		ContentLength: size,
		Body:          http.NoBody,
	}
	if size > 0 {
		req.Body = body(parts)
		req.GetBody = func() (io.ReadCloser, error) { return body(parts), nil }
	}
	return req.WithContext(ctx)
}

// body reads the concatenation of parts.
func body(parts [][]byte) io.ReadCloser {
	if len(parts) == 1 {
		return io.NopCloser(bytes.NewReader(parts[0]))
	}
	return io.NopCloser(newPartsReader(parts))
}

// responseError is S3's answer to a write that failed, as the SDK's own
// (service/internal/s3shared.ResponseError): the status, S3's request and
// host IDs, and S3's code and message (a smithy.APIError) inside.
type responseError struct {
	*awshttp.ResponseError
	hostID string
}

func (e *responseError) Error() string {
	return fmt.Sprintf("https response error StatusCode: %d, RequestID: %s, HostID: %s, %v",
		e.HTTPStatusCode(), e.RequestID, e.hostID, e.Err)
}

// ServiceHostID is S3's host ID of the request (x-amz-id-2), which AWS
// support asks for with the request ID.
func (e *responseError) ServiceHostID() string { return e.hostID }

// answerError reads S3's error answer: the XML body's code and message,
// or, as the SDK does when it has none, the status text.
func answerError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Code      string `xml:"Code"`
		Message   string `xml:"Message"`
		RequestID string `xml:"RequestId"`
		HostID    string `xml:"HostId"`
	}
	_ = xml.Unmarshal(raw, &body) // a proxy's HTML page or nothing: the status speaks
	if body.Code == "" && body.Message == "" {
		text := http.StatusText(resp.StatusCode)
		body.Code, body.Message = strings.ReplaceAll(text, " ", ""), text
	}
	if body.RequestID == "" {
		body.RequestID = resp.Header.Get("X-Amz-Request-Id")
	}
	if body.HostID == "" {
		body.HostID = resp.Header.Get("X-Amz-Id-2")
	}
	return answered(resp, &smithy.GenericAPIError{Code: body.Code, Message: body.Message}, body.RequestID, body.HostID)
}

// answered wraps err with the answer it came with, as the SDK does.
func answered(resp *http.Response, err error, requestID, hostID string) error {
	return &responseError{
		ResponseError: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: err},
			RequestID:     requestID,
		},
		hostID: hostID,
	}
}

// The codes with which S3 may refuse a signature made with a clock that
// is off, as the SDK's retryer lists them; like the SDK, the store takes
// them for clock skew only when the answer's Date says the clocks differ
// by more than skewThreshold.
var clockSkewCodes = map[string]bool{
	"InvalidSignatureException": true,
	"SignatureDoesNotMatch":     true,
	"AuthFailure":               true,
	"RequestTimeTooSkewed":      true,
	"AccessDeniedException":     true,
}

const skewThreshold = 4 * time.Minute

// skewed tells a refusal for clock skew: it learns the server's clock
// from the answer's Date and makes err retryable, so that the next
// attempt is signed at the server's time, as the SDK's retry loop does.
func (d *direct) skewed(err error, resp *http.Response, answered time.Time, signedWith time.Duration) error {
	var api smithy.APIError
	if d.noSkew || !errors.As(err, &api) || !clockSkewCodes[api.ErrorCode()] || resp.Header.Get("Age") != "" {
		return err
	}
	server, perr := http.ParseTime(resp.Header.Get("Date"))
	if perr != nil {
		return err
	}
	skew := server.Sub(answered)
	if diff := skew - signedWith; diff > -skewThreshold && diff < skewThreshold {
		return err
	}
	d.skew.Store(int64(skew))
	return &clockSkewError{err}
}

// clockSkewError is a refusal for clock skew: retryable.
type clockSkewError struct{ error }

func (e *clockSkewError) Unwrap() error        { return e.error }
func (e *clockSkewError) RetryableError() bool { return true }
