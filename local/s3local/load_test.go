package s3local_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// loadFragment is the body written at a fragment key: its size (128 to
// 512 KiB) and its bytes follow from the key alone, so that a reader can
// check any whole or ranged read against what was written.
func loadFragment(key string) []byte {
	seed := sha256.Sum256([]byte(key))
	r := rand.New(rand.NewChaCha8(seed))
	b := make([]byte, 128<<10+r.IntN(384<<10))
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// loadBig is a large object (16 MiB, more than the sockets between server
// and client hold), its bytes following from the key.
func loadBig(key string) []byte {
	const size = 16 << 20
	var b []byte
	for i := 0; len(b) < size; i++ {
		b = append(b, loadFragment(fmt.Sprintf("%s/%d", key, i))...)
	}
	return b[:size]
}

// A state document carries its count, who wrote it and padding of a few
// KiB, then the SHA-256 of all that: a body torn between two versions
// fails its own checksum.
func loadDoc(count, writer int, r *rand.Rand) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "count=%d writer=%d pad=", count, writer)
	for range 1024 + r.IntN(7*1024) {
		b.WriteByte('a' + byte(r.IntN(26)))
	}
	sum := sha256.Sum256(b.Bytes())
	fmt.Fprintf(&b, "\nsum=%x", sum)
	return b.Bytes()
}

// parseDoc checks a document's checksum and returns its count.
func parseDoc(b []byte) (int, error) {
	i := bytes.LastIndex(b, []byte("\nsum="))
	if i < 0 {
		return 0, errors.New("no checksum")
	}
	sum := sha256.Sum256(b[:i])
	if string(b[i+len("\nsum="):]) != hex.EncodeToString(sum[:]) {
		return 0, errors.New("checksum does not match the body")
	}
	head, _, _ := strings.Cut(string(b[:i]), " ")
	return strconv.Atoi(strings.TrimPrefix(head, "count="))
}

// etagOf is the ETag S3 gives a single-part object: the MD5 of its body.
func etagOf(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// The store on disk holds under the load of the local stack: many writers
// of new fragments, writers that overwrite small state documents with
// If-Match and retry on 412, and readers of both (whole and ranged) while
// the data grows past a few hundred MB. Every read returns exactly a
// version that was written, with its own ETag; no conditional update is
// lost; the process does not crash.
func TestStoreUnderLoadNeverTearsNorLosesAnUpdate(t *testing.T) {
	fragWriters, fragsEach := 8, 150 // about 380 MB
	// Document writers go on while fragments are written, at least
	// minIncs increments each.
	docWriters, minIncs, docs := 8, 100, 6
	readers, slowReaders := 4, 2
	if testing.Short() {
		fragsEach = 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var evMu sync.Mutex
	notified := map[string]int{} // events by key
	notify := func(_ context.Context, ev events.S3Event) error {
		evMu.Lock()
		defer evMu.Unlock()
		notified[ev.Records[0].S3.Object.Key]++
		return nil
	}
	srv, st := start(t, s3local.Options{DataDir: dir, Filter: layout.Notifies, Notify: notify})
	defer srv.Close(context.Background())

	docKey := func(i int) string { return fmt.Sprintf("state/load/tracks/doc-%d.json", i) }
	for i := range docs {
		if _, err := st.Put(ctx, docKey(i), loadDoc(0, -1, rand.New(rand.NewPCG(uint64(i), 0))), store.PutOptions{IfNoneMatch: true, ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu       sync.Mutex
		grew     = sync.NewCond(&mu) // written grew, or finished
		written  []string            // fragment keys stored
		finished bool                // no more fragments
		applied  = make([]atomic.Int64, docs)
		bytesOut atomic.Int64
		reads    atomic.Int64
		ranged   atomic.Int64
		slow     atomic.Int64
		retries  atomic.Int64
		tornMu   sync.Mutex
		torn     []string
	)
	tear := func(format string, args ...any) {
		tornMu.Lock()
		defer tornMu.Unlock()
		if len(torn) < 20 {
			torn = append(torn, fmt.Sprintf(format, args...))
		} else {
			torn[19] = fmt.Sprintf("... and more (the last: "+format+")", args...)
		}
	}
	began := time.Now()
	var writers, all sync.WaitGroup
	fragsDone := make(chan struct{})
	for w := range fragWriters {
		writers.Go(func() {
			for k := range fragsEach {
				key := fmt.Sprintf("live/load%d.isml/QualityLevels(3000000)/Fragments(video=%d)", w, k*20_000_000)
				body := loadFragment(key)
				if _, err := st.Put(ctx, key, body, store.PutOptions{IfNoneMatch: true, ContentType: "video/mp4", CacheControl: store.CacheImmutable}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				bytesOut.Add(int64(len(body)))
				written = append(written, key)
				grew.Broadcast()
				mu.Unlock()
			}
		})
	}
	for w := range docWriters {
		all.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for n := 0; ; n++ {
				if n >= minIncs {
					select {
					case <-fragsDone:
						return
					default:
					}
				}
				i := 0 // every other increment goes to the shared counter
				if n%2 == 1 {
					i = 1 + r.IntN(docs-1)
				}
				for {
					obj, err := st.Get(ctx, docKey(i))
					if err != nil {
						t.Errorf("doc writer %d: %v", w, err)
						return
					}
					count, err := parseDoc(obj.Body)
					if err != nil || etagOf(obj.Body) != obj.ETag {
						tear("doc writer read %s: %v (ETag %s, body's %s)", docKey(i), err, obj.ETag, etagOf(obj.Body))
						return
					}
					_, err = st.Put(ctx, docKey(i), loadDoc(count+1, w, r), store.PutOptions{IfMatch: obj.ETag, ContentType: "application/json", CacheControl: store.CacheNone})
					if errors.Is(err, store.ErrPreconditionFailed) {
						retries.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("doc writer %d: %v", w, err)
						return
					}
					applied[i].Add(1)
					break
				}
			}
		})
	}
	for g := range readers {
		all.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for {
				select {
				case <-fragsDone:
					return
				default:
				}
				if r.IntN(2) == 0 {
					key := docKey(r.IntN(docs))
					obj, err := st.Get(ctx, key)
					if err != nil {
						t.Errorf("reader %d: %v", g, err)
						return
					}
					reads.Add(1)
					if _, err := parseDoc(obj.Body); err != nil || etagOf(obj.Body) != obj.ETag {
						tear("read %s: %v (ETag %s, body's %s)", key, err, obj.ETag, etagOf(obj.Body))
					}
					continue
				}
				mu.Lock()
				if len(written) == 0 {
					mu.Unlock()
					continue
				}
				key := written[r.IntN(len(written))]
				mu.Unlock()
				want := loadFragment(key)
				if r.IntN(2) == 0 {
					obj, err := st.Get(ctx, key)
					if err != nil {
						t.Errorf("reader %d: %v", g, err)
						return
					}
					reads.Add(1)
					if !bytes.Equal(obj.Body, want) || obj.ETag != etagOf(want) {
						tear("read %s: %d bytes, ETag %s; wrote %d bytes, ETag %s", key, len(obj.Body), obj.ETag, len(want), etagOf(want))
					}
					continue
				}
				first := r.Int64N(int64(len(want)))
				last := min(first+r.Int64N(64<<10), int64(len(want))-1)
				obj, err := st.GetRange(ctx, key, first, last)
				if err != nil {
					t.Errorf("reader %d: %v", g, err)
					return
				}
				reads.Add(1)
				ranged.Add(1)
				if !bytes.Equal(obj.Body, want[first:last+1]) || obj.Size != int64(len(want)) {
					tear("read %s bytes %d-%d: %d bytes of %d; wrote %d", key, first, last, len(obj.Body), obj.Size, len(want))
				}
			}
		})
	}
	// Slow readers each read a large object of their own (as a player
	// fetching a long segment) and stall after its first bytes until the
	// data on disk has doubled, then read the rest: the server is in the
	// middle of sending the body all that time, while the store grows
	// under it.
	for g := range slowReaders {
		key := fmt.Sprintf("big/slow%d.mp4", g)
		big := loadBig(key)
		if _, err := st.Put(ctx, key, big, store.PutOptions{ContentType: "video/mp4"}); err != nil {
			t.Fatal(err)
		}
		all.Go(func() {
			for {
				mu.Lock()
				stop := finished
				mu.Unlock()
				if stop {
					return
				}
				out, err := st.Open(ctx, key)
				if err != nil {
					t.Errorf("slow reader %d: %v", g, err)
					return
				}
				got := make([]byte, 32<<10)
				_, err = io.ReadFull(out.Body, got)
				mu.Lock()
				for target := 2*bytesOut.Load() + int64(len(big)); bytesOut.Load() < target && !finished; {
					grew.Wait()
				}
				mu.Unlock()
				rest, err2 := io.ReadAll(out.Body)
				out.Body.Close()
				if err = errors.Join(err, err2); err != nil {
					t.Errorf("slow reader %d: %s: %v", g, key, err)
					return
				}
				reads.Add(1)
				slow.Add(1)
				if !bytes.Equal(append(got, rest...), big) {
					tear("slow read %s: %d bytes; wrote %d", key, len(got)+len(rest), len(big))
				}
			}
		})
	}
	writers.Wait()
	mu.Lock()
	finished = true
	grew.Broadcast()
	mu.Unlock()
	close(fragsDone)
	all.Wait()
	elapsed := time.Since(began)

	var onDisk int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				onDisk += info.Size()
			}
		}
		return nil
	})
	var updates int64
	for i := range applied {
		updates += applied[i].Load()
	}
	t.Logf("%d fragments (%d MB) and %d conditional updates (%d lost races retried) in %v; %d reads (%d ranged, %d stalled while the data doubled) alongside; %d MB on disk",
		len(written), bytesOut.Load()>>20, updates, retries.Load(), elapsed.Round(time.Millisecond), reads.Load(), ranged.Load(), slow.Load(), onDisk>>20)
	for _, s := range torn {
		t.Errorf("torn: %s", s)
	}
	if t.Failed() {
		return
	}
	for i := range docs {
		obj, err := st.Get(ctx, docKey(i))
		if err != nil {
			t.Fatal(err)
		}
		count, err := parseDoc(obj.Body)
		if err != nil {
			t.Fatalf("%s: %v", docKey(i), err)
		}
		if int64(count) != applied[i].Load() {
			t.Errorf("%s counts %d, but %d conditional updates succeeded", docKey(i), count, applied[i].Load())
		}
	}
	listed := map[string]int64{}
	if err := st.List(ctx, "live/", func(page []store.Listed) error {
		for _, o := range page {
			listed[o.Key] = o.Size
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(written) {
		t.Errorf("listed %d fragments, wrote %d", len(listed), len(written))
	}
	for _, key := range written {
		if size, ok := listed[key]; !ok || size != int64(len(loadFragment(key))) {
			t.Errorf("%s listed %v with size %d", key, ok, size)
			break
		}
	}
	// One event for each fragment stored, none for the state.
	srv.Drain()
	evMu.Lock()
	defer evMu.Unlock()
	if len(notified) != len(written) {
		t.Errorf("events for %d keys, %d fragments stored", len(notified), len(written))
	}
	for _, key := range written {
		if n := notified[s3local.EncodeKey(key)]; n != 1 {
			t.Errorf("%d events for %s, want 1", n, key)
			break
		}
	}
}
