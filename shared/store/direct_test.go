package store_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/smoothcast/smoothcast/shared/store"
)

// received is a request as the endpoint read it off the connection.
type received struct {
	method, host, uri string
	tls               bool
	header            http.Header
	length            int64
	chunked           bool
	body              []byte
}

// endpoint is an S3 endpoint on loopback that records every request and
// answers it with answer (the request's number, from 1), or with S3's
// answer to a write that succeeded.
type endpoint struct {
	srv    *httptest.Server
	answer func(w http.ResponseWriter, r *http.Request, n int)
	mu     sync.Mutex
	got    []received
}

func newEndpoint(t *testing.T, useTLS bool, answer func(w http.ResponseWriter, r *http.Request, n int)) *endpoint {
	t.Helper()
	e := &endpoint{answer: answer}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("endpoint: read body: %v", err)
		}
		e.mu.Lock()
		e.got = append(e.got, received{
			method: r.Method, host: r.Host, uri: r.RequestURI, tls: r.TLS != nil, header: r.Header.Clone(),
			length: r.ContentLength, chunked: slices.Contains(r.TransferEncoding, "chunked"), body: body,
		})
		n := len(e.got)
		e.mu.Unlock()
		if e.answer != nil {
			e.answer(w, r, n)
			return
		}
		w.Header().Set("ETag", `"e"`)
	}))
	if useTLS {
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	t.Cleanup(e.srv.Close)
	return e
}

// client reaches the endpoint whatever the host a request names (AWS's
// included), without checking its certificate.
func (e *endpoint) client(t *testing.T) *http.Client {
	addr := e.srv.Listener.Addr().String()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func (e *endpoint) requests() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// sdkOnly are the headers the SDK's PutObject sends for its own
// bookkeeping, which S3 does not act on: its user agent, invocation ID and
// attempt count, and an Accept-Encoding that keeps Go from decompressing
// answers.
var sdkOnly = []string{"User-Agent", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "Accept-Encoding"}

// isolateAWSConfig keeps the machine's AWS configuration out of a test:
// credentials come from the variables the test sets.
func isolateAWSConfig(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// The SDK refuses a CA bundle from the environment with a client of
	// our own.
	t.Setenv("AWS_CA_BUNDLE", "")
}

// A write on the direct path is the request the SDK's PutObject sends for
// it, less the SDK's bookkeeping headers: the same method, host and
// escaped path (virtual-hosted on AWS, path style on an S3-compatible
// endpoint or for a bucket with dots over TLS, FIPS and dual-stack hosts
// when the configuration asks), every header S3 acts on with the same
// value, the same body; and its signature is SigV4's over what was sent.
func TestDirectWritesAreTheSDKsPutObject(t *testing.T) {
	isolateAWSConfig(t)
	const accessKey, secretKey, token = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session-token"
	for _, tc := range []struct {
		name     string
		tls      bool
		cfg      store.Config
		env      map[string]string
		session  bool // credentials from the environment, with a session token
		host     string
		pathHead string // the path up to the key
		region   string // the signature's
	}{
		{name: "AWS, virtual-hosted, session credentials", tls: true, session: true,
			cfg:  store.Config{Bucket: "smoothcast-media", Region: "eu-west-1"},
			host: "smoothcast-media.s3.eu-west-1.amazonaws.com", pathHead: "/", region: "eu-west-1"},
		{name: "AWS, a bucket with dots goes path style over TLS", tls: true, session: true,
			cfg:  store.Config{Bucket: "media.example.com", Region: "eu-west-1"},
			host: "s3.eu-west-1.amazonaws.com", pathHead: "/media.example.com/", region: "eu-west-1"},
		{name: "AWS, FIPS and dual-stack asked by the configuration", tls: true, session: true,
			cfg:  store.Config{Bucket: "smoothcast-media", Region: "us-east-1"},
			env:  map[string]string{"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
			host: "smoothcast-media.s3-fips.dualstack.us-east-1.amazonaws.com", pathHead: "/", region: "us-east-1"},
		{name: "AWS, a FIPS pseudo-region", tls: true, session: true,
			cfg:  store.Config{Bucket: "smoothcast-media", Region: "fips-us-gov-west-1"},
			host: "smoothcast-media.s3-fips.us-gov-west-1.amazonaws.com", pathHead: "/", region: "us-gov-west-1"},
		{name: "S3-compatible endpoint over TLS, path style", tls: true,
			cfg:  store.Config{Bucket: "media", Endpoint: "https://s3.example.net", AccessKey: accessKey, SecretKey: secretKey},
			host: "s3.example.net", pathHead: "/media/", region: "us-east-1"},
		{name: "S3-compatible endpoint over plain HTTP, with a port and a base path", tls: false,
			cfg:  store.Config{Bucket: "media", Region: "eu-central-1", Endpoint: "http://minio.internal:9000/s3", AccessKey: accessKey, SecretKey: secretKey},
			host: "minio.internal:9000", pathHead: "/s3/media/", region: "eu-central-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
			if tc.session {
				creds.SessionToken = token
				t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
				t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
				t.Setenv("AWS_SESSION_TOKEN", token)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			e := newEndpoint(t, tc.tls, nil)
			cfg := tc.cfg
			cfg.HTTPClient = e.client(t)
			direct, err := store.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if direct.SDKWrites {
				t.Fatal("New chose the SDK for writes")
			}
			viaSDK, err := store.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			viaSDK.SDKWrites = true
			for _, w := range []struct {
				name  string
				key   string
				parts [][]byte
				o     store.PutOptions
			}{
				{"a fragment in two parts, written once", "live/ch 1/Streams(video=3000000)/Fragments(video=20000000,format=cmaf)@b",
					[][]byte{[]byte("moof...."), bytes.Repeat([]byte{7}, 100<<10)},
					store.PutOptions{ContentType: "video/mp4", CacheControl: store.CacheImmutable, IfNoneMatch: true}},
				{"state with metadata and tags, replacing an ETag", "state/ch=1/a+b~c%d é//x.json", [][]byte{[]byte(`{"seq":7}`)},
					store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, IfMatch: `"3f2a"`,
						Metadata: map[string]string{"prev": "42", "Seq-no": "7"}, Tagging: "retention=short&kind=state"}},
				{"an empty body without options", "live/ch 1/end", nil, store.PutOptions{}},
				{"3 MiB in three parts, which asks for 100-continue", "live/big", [][]byte{bytes.Repeat([]byte{1}, 1<<20), bytes.Repeat([]byte{2}, 1<<20), bytes.Repeat([]byte{3}, 1<<20)},
					store.PutOptions{ContentType: "video/mp4"}},
			} {
				t.Run(w.name, func(t *testing.T) {
					var sent [2]received
					for i, st := range []*store.Store{viaSDK, direct} {
						before := len(e.requests())
						if _, err := st.PutParts(context.Background(), w.key, w.parts, w.o); err != nil {
							t.Fatal(err)
						}
						got := e.requests()
						if len(got) != before+1 {
							t.Fatalf("%d requests for one write", len(got)-before)
						}
						sent[i] = got[before]
					}
					sdk, own := sent[0], sent[1]
					whole := bytes.Join(w.parts, nil)
					wantURI := tc.pathHead + strings.TrimPrefix(escapeKey(w.key), "/") + "?x-id=PutObject"
					if sdk.method != http.MethodPut || sdk.host != tc.host || sdk.uri != wantURI || sdk.tls != tc.tls {
						t.Errorf("the SDK sent %s %s%s (TLS %v), want PUT %s%s (TLS %v)", sdk.method, sdk.host, sdk.uri, sdk.tls, tc.host, wantURI, tc.tls)
					}
					if own.method != sdk.method || own.host != sdk.host || own.uri != sdk.uri || own.tls != sdk.tls {
						t.Errorf("direct path sent %s %s%s (TLS %v), the SDK %s %s%s (TLS %v)", own.method, own.host, own.uri, own.tls, sdk.method, sdk.host, sdk.uri, sdk.tls)
					}
					for _, r := range sent {
						if !bytes.Equal(r.body, whole) || r.length != int64(len(whole)) || r.chunked {
							t.Errorf("body of %d bytes, Content-Length %d, chunked %v; want the %d bytes of the parts", len(r.body), r.length, r.chunked, len(whole))
						}
					}
					if a, b := withoutSDKOnly(sdk.header), withoutSDKOnly(own.header); !equalHeaders(a, b) {
						t.Errorf("headers differ:\nSDK    %v\ndirect %v", a, b)
					}
					if got := own.header.Get("X-Amz-Security-Token"); tc.session && got != token {
						t.Errorf("X-Amz-Security-Token %q, want the session's", got)
					}
					sdkSigned, ownSigned := signedHeaders(sdk.header), signedHeaders(own.header)
					sdkSigned = slices.DeleteFunc(sdkSigned, func(h string) bool {
						return slices.ContainsFunc(sdkOnly, func(o string) bool { return strings.EqualFold(o, h) })
					})
					if !slices.Equal(sdkSigned, ownSigned) {
						t.Errorf("signed headers: the SDK's %v (less its own), the direct path's %v", sdkSigned, ownSigned)
					}
					for i, r := range sent {
						who := [2]string{"SDK", "direct path"}[i]
						if err := verifySigV4(r, creds, tc.region); err != nil {
							t.Errorf("%s: %v", who, err)
						}
					}
					sdkAt, _ := time.Parse("20060102T150405Z", sdk.header.Get("X-Amz-Date"))
					ownAt, err := time.Parse("20060102T150405Z", own.header.Get("X-Amz-Date"))
					if err != nil || ownAt.Sub(sdkAt).Abs() > time.Minute {
						t.Errorf("X-Amz-Date %q, the SDK's %q", own.header.Get("X-Amz-Date"), sdk.header.Get("X-Amz-Date"))
					}
				})
			}
		})
	}
}

// escapeKey escapes a key as S3 wants it in a path: every byte but
// letters, digits, - . _ ~ and /. (Written out here rather than taken
// from the SDK, so that the test checks the SDK too.)
func escapeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// withoutSDKOnly is h without the SDK's own headers, and without the
// Authorization and X-Amz-Date, which differ and are checked apart.
func withoutSDKOnly(h http.Header) http.Header {
	h = h.Clone()
	for _, k := range append(slices.Clone(sdkOnly), "Authorization", "X-Amz-Date") {
		h.Del(k)
	}
	return h
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// signedHeaders lists the headers an Authorization header signs.
func signedHeaders(h http.Header) []string {
	_, rest, _ := strings.Cut(h.Get("Authorization"), "SignedHeaders=")
	list, _, _ := strings.Cut(rest, ",")
	return strings.Split(list, ";")
}

// verifySigV4 signs again, with the SDK's signer under S3's rules, the
// request as the endpoint received it (its method, host, path as sent,
// the headers its Authorization names, the time of its X-Amz-Date and
// its payload hash) and compares the signature with the one it carried.
func verifySigV4(r received, creds aws.Credentials, region string) error {
	auth := r.header.Get("Authorization")
	scope := "Credential=" + creds.AccessKeyID + "/" + r.header.Get("X-Amz-Date")[:8] + "/" + region + "/s3/aws4_request,"
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 "+scope) {
		return fmt.Errorf("authorization %q is not SigV4 for %s", auth, scope)
	}
	scheme := "http"
	if r.tls {
		scheme = "https"
	}
	u, err := url.Parse(scheme + "://" + r.host + r.uri)
	if err != nil {
		return err
	}
	req := &http.Request{Method: r.method, URL: u, Host: r.host, Header: http.Header{}, ContentLength: r.length}
	for _, name := range signedHeaders(r.header) {
		if name != "host" && name != "content-length" {
			req.Header[http.CanonicalHeaderKey(name)] = r.header.Values(name)
		}
	}
	at, err := time.Parse("20060102T150405Z", r.header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(context.Background(), creds, req, r.header.Get("X-Amz-Content-Sha256"), "s3", region, at); err != nil {
		return err
	}
	if got := req.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature does not verify:\nsent     %s\nexpected %s", auth, got)
	}
	return nil
}

// refusal is S3's answer to a request it refuses.
type refusal struct {
	status        int
	code, message string
}

// s3RequestID is the request ID of every refusal.
const s3RequestID = "REQ123"

// answer answers as S3 does when it refuses a request: its code and
// message in XML, its request and host IDs in the XML and the headers.
func (r refusal) answer(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", s3RequestID)
	w.Header().Set("X-Amz-Id-2", "HOST456")
	w.WriteHeader(r.status)
	var msg bytes.Buffer
	_ = xml.EscapeText(&msg, []byte(r.message))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId><HostId>HOST456</HostId></Error>`, r.code, msg.String(), s3RequestID)
}

// reset closes the connection without an answer, with a TCP reset.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	raw := conn
	if c, ok := conn.(*tls.Conn); ok {
		raw = c.NetConn()
	}
	_ = raw.(*net.TCPConn).SetLinger(0)
	_ = raw.Close()
}

// A write on the direct path fails as the SDK's PutObject fails, for
// every answer: the same typed error (a lost condition, a missing bucket),
// S3's code, message and status kept, the same retries by the store's
// retry policy (throttling, 5xx and connections that fail before an
// answer: 5 attempts), and, when nothing answered, the SDK's failure to
// send in an answer of status 0, which the relay retries.
func TestDirectWritesFailAsTheSDKs(t *testing.T) {
	isolateAWSConfig(t)
	slowDown := refusal{503, "SlowDown", "Please reduce your request rate."}
	for _, tc := range []struct {
		name string
		// refuse: S3 answers every attempt so (with its request ID);
		// else answer answers, and want is the error expected.
		refuse *refusal
		answer func(w http.ResponseWriter, r *http.Request, n int)
		want   refusal
		ok     bool  // the write succeeds
		is     error // the typed error, if any
		// sendFailed: no answer came; the error is the SDK's
		// RequestSendError inside an answer of status 0.
		sendFailed bool
		attempts   int
	}{
		{name: "412 is a lost condition", is: store.ErrPreconditionFailed, attempts: 1,
			refuse: &refusal{412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"}},
		{name: "409 ConditionalRequestConflict is a lost condition", is: store.ErrPreconditionFailed, attempts: 1,
			refuse: &refusal{409, "ConditionalRequestConflict", "A conflicting conditional action is currently in progress against this resource."}},
		{name: "404 is not found", is: store.ErrNotFound, attempts: 1,
			refuse: &refusal{404, "NoSuchBucket", "The specified bucket does not exist"}},
		{name: "403 is final, with S3's code and message", attempts: 1,
			refuse: &refusal{403, "AccessDenied", "Access Denied"}},
		{name: "503 SlowDown is retried, then fails with S3's code", attempts: 5, refuse: &slowDown},
		{name: "500 without XML is retried, the status its code", attempts: 5,
			answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(500)
				_, _ = io.WriteString(w, "<html><body>proxy error</body></html>")
			},
			want: refusal{500, "InternalServerError", "Internal Server Error"}},
		{name: "a connection reset before any answer is retried, then fails with status 0", attempts: 5,
			answer:     func(w http.ResponseWriter, _ *http.Request, _ int) { reset(w) },
			sendFailed: true},
		{name: "a 503 then a 200: the write succeeds, its body sent again whole", ok: true, attempts: 2,
			answer: func(w http.ResponseWriter, _ *http.Request, n int) {
				if n == 1 {
					slowDown.answer(w)
					return
				}
				w.Header().Set("ETag", `"e"`)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer, want, requestID := tc.answer, tc.want, ""
			if tc.refuse != nil {
				answer = func(w http.ResponseWriter, _ *http.Request, _ int) { tc.refuse.answer(w) }
				want, requestID = *tc.refuse, s3RequestID
			}
			for _, sdk := range []bool{true, false} {
				path := map[bool]string{true: "SDK", false: "direct path"}[sdk]
				e := newEndpoint(t, true, answer)
				st, err := store.New(context.Background(), store.Config{Bucket: "media", Endpoint: e.srv.URL, AccessKey: "a", SecretKey: "s", HTTPClient: e.client(t)})
				if err != nil {
					t.Fatal(err)
				}
				st.SDKWrites = sdk
				store.RetryAtOnce(st)
				parts := [][]byte{[]byte("moof"), bytes.Repeat([]byte{9}, 64<<10)}
				etag, err := st.PutParts(context.Background(), "live/f", parts, store.PutOptions{IfNoneMatch: true})
				got := e.requests()
				if len(got) != tc.attempts {
					t.Errorf("%s: %d attempts, want %d", path, len(got), tc.attempts)
				}
				for i, r := range got {
					if !bytes.Equal(r.body, bytes.Join(parts, nil)) {
						t.Errorf("%s: attempt %d sent %d bytes, want the %d of the parts", path, i+1, len(r.body), len(bytes.Join(parts, nil)))
					}
				}
				if tc.ok {
					if err != nil || etag != `"e"` {
						t.Errorf("%s: %q, %v; want the ETag", path, etag, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("%s: no error", path)
				}
				for _, typed := range []error{store.ErrPreconditionFailed, store.ErrNotFound} {
					if errors.Is(err, typed) != (typed == tc.is) {
						t.Errorf("%s: errors.Is(%v) = %v: %v", path, typed, !(typed == tc.is), err)
					}
				}
				// What the relay's retry decision reads.
				var withStatus interface{ HTTPStatusCode() int }
				if !errors.As(err, &withStatus) || withStatus.HTTPStatusCode() != want.status {
					t.Errorf("%s: status in %v; want %d", path, err, want.status)
				}
				var api smithy.APIError
				if want.code != "" && (!errors.As(err, &api) || api.ErrorCode() != want.code || api.ErrorMessage() != want.message) {
					t.Errorf("%s: %v; want S3's code %s and message %q", path, err, want.code, want.message)
				}
				var sendErr *smithyhttp.RequestSendError
				if errors.As(err, &sendErr) != tc.sendFailed {
					t.Errorf("%s: %v is a failure to send: %v, want %v", path, err, !tc.sendFailed, tc.sendFailed)
				}
				var withID interface{ ServiceRequestID() string }
				if requestID != "" && (!errors.As(err, &withID) || withID.ServiceRequestID() != requestID) {
					t.Errorf("%s: %v does not keep S3's request ID %s", path, err, requestID)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "put live/f: ") || !strings.Contains(msg, "operation error S3: PutObject") {
					t.Errorf("%s: %q does not name the write", path, err)
				}
			}
		})
	}
}

// A write's body can be sent again by net/http itself (GetBody): when the
// endpoint redirects it (307, 308) and the client follows redirects, as
// the SDK's does for those two; or when an HTTP/2 connection refuses the
// stream. (The SDK's PutObject gives net/http no way to resend its body:
// it returns the 307 as an error.)
func TestDirectWritesCanBeSentAgainByNetHTTP(t *testing.T) {
	isolateAWSConfig(t)
	e := newEndpoint(t, true, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
			return
		}
		w.Header().Set("ETag", `"e"`)
	})
	st, err := store.New(context.Background(), store.Config{Bucket: "media", Endpoint: e.srv.URL, AccessKey: "a", SecretKey: "s", HTTPClient: e.client(t)})
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{[]byte("moof"), bytes.Repeat([]byte{9}, 64<<10)}
	if etag, err := st.PutParts(context.Background(), "live/f", parts, store.PutOptions{}); err != nil || etag != `"e"` {
		t.Fatalf("PutParts: %q, %v", etag, err)
	}
	got := e.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want the write and its resend", len(got))
	}
	for i, r := range got {
		if !bytes.Equal(r.body, bytes.Join(parts, nil)) || r.header.Get("Authorization") == "" {
			t.Errorf("request %d: %d bytes, Authorization %q; want the parts, signed", i+1, len(r.body), r.header.Get("Authorization"))
		}
	}
}

// A server whose clock is an hour ahead refuses signatures made at the
// store's time (RequestTimeTooSkewed, with its time in Date); the store
// learns the difference and signs the next attempt, and the next writes,
// at the server's time, as the SDK does.
func TestDirectWritesLearnTheServersClock(t *testing.T) {
	isolateAWSConfig(t)
	for _, sdk := range []bool{true, false} {
		path := map[bool]string{true: "SDK", false: "direct path"}[sdk]
		e := newEndpoint(t, true, func(w http.ResponseWriter, r *http.Request, _ int) {
			now := time.Now().Add(time.Hour)
			w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
			signed, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
			if err != nil || now.Sub(signed).Abs() > 15*time.Minute {
				refusal{403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."}.answer(w)
				return
			}
			w.Header().Set("ETag", `"e"`)
		})
		st, err := store.New(context.Background(), store.Config{Bucket: "media", Endpoint: e.srv.URL, AccessKey: "a", SecretKey: "s", HTTPClient: e.client(t)})
		if err != nil {
			t.Fatal(err)
		}
		st.SDKWrites = sdk
		store.RetryAtOnce(st)
		for i, want := range []int{2, 1} {
			before := len(e.requests())
			if _, err := st.Put(context.Background(), fmt.Sprintf("live/%d", i), []byte("x"), store.PutOptions{}); err != nil {
				t.Fatalf("%s: write %d: %v", path, i+1, err)
			}
			if n := len(e.requests()) - before; n != want {
				t.Errorf("%s: write %d took %d attempts, want %d", path, i+1, n, want)
			}
		}
	}
}

// Buckets whose endpoint wants another signature than SigV4 (here an S3
// Express directory bucket) are written through the SDK, which speaks it.
func TestWritesGoThroughTheSDKWhereTheDirectPathCannot(t *testing.T) {
	isolateAWSConfig(t)
	for _, tc := range []struct {
		bucket, region string
		sdk            bool
	}{
		{"smoothcast-media", "us-west-2", false},
		{"media.example.com", "us-west-2", false},
		{"media--usw2-az1--x-s3", "us-west-2", true},
	} {
		st, err := store.New(context.Background(), store.Config{Bucket: tc.bucket, Region: tc.region, AccessKey: "a", SecretKey: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if st.SDKWrites != tc.sdk {
			t.Errorf("bucket %s: SDKWrites %v, want %v", tc.bucket, st.SDKWrites, tc.sdk)
		}
	}
}
