package s3local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

// A conditional write is answered as S3 answers it: If-None-Match: * on
// an existing key, and If-Match with another object's ETag or for a key
// with no object, are 412 PreconditionFailed and store nothing; a write
// whose condition holds returns the new body's ETag.
func TestConditionalWritesAnswerAsS3(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			srv, st := start(t, s3local.Options{DataDir: m.dataDir(t)})
			defer srv.Close(ctx)
			first, err := st.Put(ctx, "state/c/x.json", []byte("v1"), store.PutOptions{IfNoneMatch: true})
			if err != nil || first != etagOf([]byte("v1")) {
				t.Fatalf("create: %s, %v; want ETag %s", first, err, etagOf([]byte("v1")))
			}
			second, err := st.Put(ctx, "state/c/x.json", []byte("v2"), store.PutOptions{IfMatch: first})
			if err != nil || second != etagOf([]byte("v2")) {
				t.Fatalf("replace: %s, %v", second, err)
			}
			for _, refused := range []struct {
				name string
				key  string
				o    store.PutOptions
			}{
				{"If-None-Match on an existing key", "state/c/x.json", store.PutOptions{IfNoneMatch: true}},
				{"If-Match with a stale ETag", "state/c/x.json", store.PutOptions{IfMatch: first}},
				{"If-Match for a key with no object", "state/c/none.json", store.PutOptions{IfMatch: first}},
			} {
				_, err := st.Put(ctx, refused.key, []byte("refused"), refused.o)
				var api smithy.APIError
				if !errors.Is(err, store.ErrPreconditionFailed) || !errors.As(err, &api) || api.ErrorCode() != "PreconditionFailed" {
					t.Errorf("%s: %v, want 412 PreconditionFailed", refused.name, err)
				}
			}
			if got := srv.Requests()["PUT 412"]; got != 3 {
				t.Errorf("%d PUTs answered 412, want 3", got)
			}
			obj, err := st.Get(ctx, "state/c/x.json")
			if err != nil || string(obj.Body) != "v2" || obj.ETag != second {
				t.Errorf("after the refusals: %q %s, %v; want v2 %s", obj.Body, obj.ETag, err, second)
			}
			if _, err := st.Get(ctx, "state/c/none.json"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused If-Match stored something: %v", err)
			}
		})
	}
}

// Of writers racing to write one key conditionally, exactly one wins
// each round, whichever condition they use: If-None-Match to create it,
// If-Match on the ETag they all read to replace it. The winner's body is
// what the key then holds.
func TestOneOfConcurrentConditionalWritersWins(t *testing.T) {
	const writers, rounds = 12, 15
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			srv, st := start(t, s3local.Options{DataDir: m.dataDir(t)})
			defer srv.Close(ctx)
			race := func(key string, o store.PutOptions) {
				var wins atomic.Int32
				var winner atomic.Value
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						body := fmt.Appendf(nil, "%s with %+v by %d", key, o, w) // a new ETag each round
						_, err := st.Put(ctx, key, body, o)
						switch {
						case err == nil:
							wins.Add(1)
							winner.Store(body)
						case !errors.Is(err, store.ErrPreconditionFailed):
							t.Errorf("writer %d: %v", w, err)
						}
					})
				}
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("%s with %+v: %d writers won, want 1", key, o, wins.Load())
				}
				obj, err := st.Get(ctx, key)
				if err != nil || !bytes.Equal(obj.Body, winner.Load().([]byte)) {
					t.Fatalf("%s holds %q (%v), the winner wrote %q", key, obj.Body, err, winner.Load())
				}
			}
			for r := range rounds {
				key := fmt.Sprintf("state/race/%d.json", r)
				race(key, store.PutOptions{IfNoneMatch: true})
				obj, err := st.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				race(key, store.PutOptions{IfMatch: obj.ETag})
			}
		})
	}
}

// Ranged reads return the bytes asked for and the object's whole size,
// as S3 does for a first-last range, an open end and a suffix; a range
// that starts past the end is 416 InvalidRange.
func TestRangedReads(t *testing.T) {
	body := make([]byte, 1000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			srv, st := start(t, s3local.Options{DataDir: m.dataDir(t)})
			defer srv.Close(ctx)
			if _, err := st.Put(ctx, "live/r", body, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				rng         string
				first, last int
			}{
				{"bytes=0-0", 0, 0},
				{"bytes=100-199", 100, 199},
				{"bytes=900-", 900, 999},
				{"bytes=-10", 990, 999},
				{"bytes=990-5000", 990, 999},
			} {
				out, err := st.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("smoothcast-test"), Key: aws.String("live/r"), Range: aws.String(c.rng)})
				if err != nil {
					t.Errorf("%s: %v", c.rng, err)
					continue
				}
				got, err := io.ReadAll(out.Body)
				out.Body.Close()
				want, wantRange := body[c.first:c.last+1], fmt.Sprintf("bytes %d-%d/%d", c.first, c.last, len(body))
				if err != nil || !bytes.Equal(got, want) || aws.ToString(out.ContentRange) != wantRange {
					t.Errorf("%s: %d bytes, Content-Range %q, %v; want %d bytes, %q", c.rng, len(got), aws.ToString(out.ContentRange), err, len(want), wantRange)
				}
			}
			_, err := st.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("smoothcast-test"), Key: aws.String("live/r"), Range: aws.String("bytes=1000-")})
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != "InvalidRange" {
				t.Errorf("a range past the end: %v, want InvalidRange", err)
			}
		})
	}
}

// A listing returns the keys under a prefix in order, those with the
// delimiter after the prefix rolled up into common prefixes, a page of
// max-keys at a time; the pages together list each key or common prefix
// once.
func TestListingPrefixesAndPages(t *testing.T) {
	keys := []string{
		"live/a.isml/Init(v).mp4",
		"live/a.isml/QualityLevels(1)/Fragments(v=1)",
		"live/a.isml/QualityLevels(1)/Fragments(v=2)",
		"live/a.isml/QualityLevels(2)/Fragments(v=1)",
		"live/b.isml/QualityLevels(1)/Fragments(v=1)",
		"live/b.isml/x",
		"live/bb",
		"live/c",
		"livestock",
		"state/a/channel.json",
		"state/a/tracks/v_1.json",
	}
	cases := []struct {
		prefix, delimiter string
		want              []string // keys, and common prefixes ending in the delimiter
	}{
		{"", "", keys},
		{"live/", "", keys[:8]},
		{"live/a.isml/QualityLevels(1)/", "", keys[1:3]},
		{"live/", "/", []string{"live/a.isml/", "live/b.isml/", "live/bb", "live/c"}},
		{"live/a.isml/", "/", []string{"live/a.isml/Init(v).mp4", "live/a.isml/QualityLevels(1)/", "live/a.isml/QualityLevels(2)/"}},
		{"", "/", []string{"live/", "livestock", "state/"}},
		{"live/b", "", keys[4:7]},
		{"state/a/tracks/", "/", keys[10:]},
		{"nothing/", "", nil},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			srv, st := start(t, s3local.Options{DataDir: m.dataDir(t)})
			defer srv.Close(ctx)
			for _, k := range slices.Backward(keys) { // stored out of order
				if _, err := st.Put(ctx, k, []byte(k), store.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range cases {
				for _, pageSize := range []int32{1, 2, 3, 1000} {
					var got []string
					in := &s3.ListObjectsV2Input{Bucket: aws.String("smoothcast-test"), MaxKeys: aws.Int32(pageSize)}
					if c.prefix != "" {
						in.Prefix = aws.String(c.prefix)
					}
					if c.delimiter != "" {
						in.Delimiter = aws.String(c.delimiter)
					}
					pages := 0
					for p := s3.NewListObjectsV2Paginator(st.Client, in); p.HasMorePages() && pages <= len(keys); pages++ {
						out, err := p.NextPage(ctx)
						if err != nil {
							t.Fatal(err)
						}
						if n := len(out.Contents) + len(out.CommonPrefixes); n > int(pageSize) {
							t.Errorf("prefix %q delimiter %q: a page of %d, max-keys %d", c.prefix, c.delimiter, n, pageSize)
						}
						for _, o := range out.Contents {
							if aws.ToInt64(o.Size) != int64(len(aws.ToString(o.Key))) || aws.ToString(o.ETag) != etagOf([]byte(aws.ToString(o.Key))) {
								t.Errorf("%s listed with size %d, ETag %s", aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag))
							}
							got = append(got, aws.ToString(o.Key))
						}
						for _, cp := range out.CommonPrefixes {
							got = append(got, aws.ToString(cp.Prefix))
						}
					}
					slices.Sort(got)
					if !slices.Equal(got, c.want) {
						t.Errorf("prefix %q delimiter %q, pages of %d: %q\nwant %q", c.prefix, c.delimiter, pageSize, got, c.want)
					}
				}
			}
		})
	}
}

// Deleting removes objects, those absent too without an error, as S3
// does; a reader that opened an object before it was deleted or replaced
// reads what it opened, whole.
func TestDeletes(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than a read's first buffer
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			srv, st := start(t, s3local.Options{DataDir: m.dataDir(t)})
			defer srv.Close(ctx)
			for _, k := range []string{"live/1", "live/2", "live/3"} {
				if _, err := st.Put(ctx, k, big, store.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			open1, err := st.Open(ctx, "live/1")
			if err != nil {
				t.Fatal(err)
			}
			open2, err := st.Open(ctx, "live/2")
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Delete(ctx, []string{"live/1", "live/absent"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(ctx, "live/2", []byte("replaced"), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("smoothcast-test"), Key: aws.String("live/3")}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("smoothcast-test"), Key: aws.String("live/absent")}); err != nil {
				t.Errorf("deleting an absent key: %v", err)
			}
			for name, out := range map[string]*s3.GetObjectOutput{"deleted": open1, "replaced": open2} {
				got, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil || !bytes.Equal(got, big) {
					t.Errorf("a read opened before the object was %s: %d bytes, %v; want the %d it opened", name, len(got), err, len(big))
				}
			}
			for _, k := range []string{"live/1", "live/3"} {
				if _, err := st.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s after its delete: %v", k, err)
				}
			}
			if keys := listKeys(t, st, ""); !slices.Equal(keys, []string{"live/2"}) {
				t.Errorf("listed %q after the deletes, want live/2", keys)
			}
		})
	}
}

func listKeys(t *testing.T, st *store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), prefix, func(page []store.Listed) error {
		for _, o := range page {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// What a write sets besides the body comes back on every read of the
// object: its x-amz-meta-* metadata, content type, cache-control and
// tagging, as S3 stores them.
func TestObjectsKeepTheirHeaders(t *testing.T) {
	o := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone,
		Metadata: map[string]string{"prev": "42", "disc": "1"}, Tagging: "expire=1"}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			srv, st := start(t, s3local.Options{DataDir: m.dataDir(t)})
			defer srv.Close(ctx)
			if _, err := st.Put(ctx, "state/h/x.json", []byte("{}"), o); err != nil {
				t.Fatal(err)
			}
			checkHeaders(t, srv.URL+"/smoothcast-test/state/h/x.json", o)
		})
	}
}

// checkHeaders checks that a GET and a HEAD of url answer the headers a
// write with o set.
func checkHeaders(t *testing.T, url string, o store.PutOptions) {
	t.Helper()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != o.ContentType || h.Get("Cache-Control") != o.CacheControl ||
			h.Get("X-Amz-Tagging") != o.Tagging {
			t.Errorf("%s: %s, Content-Type %q, Cache-Control %q, tagging %q; want %q, %q, %q", method, resp.Status,
				h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("X-Amz-Tagging"), o.ContentType, o.CacheControl, o.Tagging)
		}
		for k, v := range o.Metadata {
			if got := h.Get("X-Amz-Meta-" + k); got != v {
				t.Errorf("%s: x-amz-meta-%s %q, want %q", method, k, got, v)
			}
		}
	}
}

// With a data directory, objects outlive the server with everything a
// write set (metadata, headers, ETag) and are listed again; an
// overwrite replaces them whole, as in S3.
func TestDataDirKeepsObjectsWhole(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, st := start(t, s3local.Options{DataDir: dir})
	o := store.PutOptions{ContentType: "video/mp4", CacheControl: store.CacheImmutable, Metadata: map[string]string{"prev": "7"}, Tagging: "expire=1"}
	etag, err := st.Put(ctx, "live/k.isml/QualityLevels(1)/Fragments(v=0)", []byte("fragment"), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "state/k/channel.json", []byte("{}"), o); err != nil {
		t.Fatal(err)
	}
	replaced := store.PutOptions{ContentType: "application/json"}
	if _, err := st.Put(ctx, "state/k/channel.json", []byte("{1}"), replaced); err != nil {
		t.Fatal(err)
	}
	srv, st = restart(t, srv, s3local.Options{DataDir: dir})
	defer srv.Close(ctx)
	obj, err := st.Get(ctx, "live/k.isml/QualityLevels(1)/Fragments(v=0)")
	if err != nil || string(obj.Body) != "fragment" || obj.ETag != etag {
		t.Fatalf("after the restart: %q %s, %v", obj.Body, obj.ETag, err)
	}
	checkHeaders(t, srv.URL+"/smoothcast-test/live/k.isml/QualityLevels(1)/Fragments(v=0)", o)
	checkHeaders(t, srv.URL+"/smoothcast-test/state/k/channel.json", replaced)
	if keys := listKeys(t, st, ""); !slices.Equal(keys, []string{"live/k.isml/QualityLevels(1)/Fragments(v=0)", "state/k/channel.json"}) {
		t.Errorf("listed %q after the restart", keys)
	}
}

// One server at a time uses a data directory: a second is refused while
// the first runs, and starts once it has stopped.
func TestDataDirIsLockedWhileInUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, _ := start(t, s3local.Options{DataDir: dir})
	if other, err := s3local.Start(ctx, s3local.Options{Addr: "127.0.0.1:0", Bucket: "smoothcast-test", DataDir: dir, Log: quiet}); err == nil {
		other.Close(ctx)
		t.Fatal("a second server started on a data directory in use")
	} else if !strings.Contains(err.Error(), "is another smoothcast using it?") {
		t.Errorf("refused with %q, which does not say why", err)
	}
	srv, _ = restart(t, srv, s3local.Options{DataDir: dir})
	srv.Close(ctx)
}

// A write cut short by the end of the process (its body in tmp/, never
// renamed into place) is not an object and is cleared at the next start;
// a damaged file among the objects is skipped, not served.
func TestDataDirDropsWhatAWriteDidNotFinish(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, st := start(t, s3local.Options{DataDir: dir})
	if _, err := st.Put(ctx, "live/kept", []byte("kept"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	unfinished := filepath.Join(dir, "s3", "tmp", "put-123")
	damaged := filepath.Join(dir, "s3", "buckets", "smoothcast-test", "00", "damaged")
	for _, f := range []string{unfinished, damaged} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("half a body"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, st = start(t, s3local.Options{DataDir: dir})
	defer srv.Close(ctx)
	if _, err := os.Stat(unfinished); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unfinished write is still in tmp/: %v", err)
	}
	if keys := listKeys(t, st, ""); !slices.Equal(keys, []string{"live/kept"}) {
		t.Errorf("listed %q, want live/kept alone", keys)
	}
}
