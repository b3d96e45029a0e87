package s3local_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

// BenchmarkStore measures the server through the store client, as the
// relay and the manifest function use it, from 8 goroutines at once:
// fragments of 300 KB written once (If-None-Match) and read back whole;
// state of 4 KB on 4 keys read and replaced with If-Match (a lost race
// is read again and retried, and counted).
func BenchmarkStore(b *testing.B) {
	fragment := make([]byte, 300<<10)
	for i := range fragment {
		fragment[i] = byte(i)
	}
	state := fragment[:4<<10]
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			ctx := context.Background()
			srv, st := start(b, s3local.Options{DataDir: m.dataDir(b)})
			defer srv.Close(ctx)
			var seq atomic.Int64
			b.Run("write fragments", func(b *testing.B) {
				b.SetBytes(int64(len(fragment)))
				b.SetParallelism(4) // 8 on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						key := fmt.Sprintf("live/b.isml/QualityLevels(1)/Fragments(v=%d)", seq.Add(1))
						if _, err := st.Put(ctx, key, fragment, store.PutOptions{IfNoneMatch: true, ContentType: "video/mp4"}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("read fragments", func(b *testing.B) {
				n := seq.Load()
				b.SetBytes(int64(len(fragment)))
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						key := fmt.Sprintf("live/b.isml/QualityLevels(1)/Fragments(v=%d)", 1+rand.Int64N(n))
						if _, err := st.Get(ctx, key); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			for k := range 4 {
				if _, err := st.Put(ctx, fmt.Sprintf("state/b/%d.json", k), state, store.PutOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("replace state", func(b *testing.B) {
				var lost atomic.Int64
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						key := fmt.Sprintf("state/b/%d.json", rand.IntN(4))
						for {
							obj, err := st.Get(ctx, key)
							if err != nil {
								b.Error(err)
								return
							}
							body := fmt.Appendf(nil, "%d %s", seq.Add(1), state) // a new ETag
							_, err = st.Put(ctx, key, body, store.PutOptions{IfMatch: obj.ETag})
							if errors.Is(err, store.ErrPreconditionFailed) {
								lost.Add(1)
								continue
							}
							if err != nil {
								b.Error(err)
								return
							}
							break
						}
					}
				})
				b.ReportMetric(float64(lost.Load())/float64(b.N), "lost/op")
			})
		})
	}
}
