package storetest

import (
	"bytes"
	"context"
	"strconv"
	"sync"

	"github.com/smoothcast/smoothcast/shared/store"
)

// Mem is a store in memory that keeps S3's conditions (If-None-Match,
// If-Match) and answers with its typed errors: for tests and benchmarks
// of code above the store, without a store's round trips. Safe for
// concurrent use.
type Mem struct {
	mu      sync.Mutex
	objects map[string]store.Object
	etag    int
}

// Get reads the whole object at key.
func (m *Mem) Get(_ context.Context, key string) (store.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return store.Object{}, store.ErrNotFound
	}
	return o, nil
}

// GetRange reads bytes [first, last] of the object at key.
func (m *Mem) GetRange(ctx context.Context, key string, first, last int64) (store.Object, error) {
	o, err := m.Get(ctx, key)
	if err != nil {
		return o, err
	}
	o.Size = int64(len(o.Body))
	o.Body = o.Body[min(first, o.Size):min(last+1, o.Size)]
	return o, nil
}

// Put writes body at key if o's condition holds, and returns its ETag.
func (m *Mem) Put(_ context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, exists := m.objects[key]
	if o.IfNoneMatch && exists || o.IfMatch != "" && (!exists || old.ETag != o.IfMatch) {
		return "", store.ErrPreconditionFailed
	}
	if m.objects == nil {
		m.objects = map[string]store.Object{}
	}
	m.etag++
	etag := `"` + strconv.Itoa(m.etag) + `"`
	m.objects[key] = store.Object{Body: bytes.Clone(body), ETag: etag, ContentType: o.ContentType, Metadata: o.Metadata, Size: int64(len(body))}
	return etag, nil
}

// PutParts writes the concatenation of parts at key, as Put.
func (m *Mem) PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error) {
	return m.Put(ctx, key, bytes.Join(parts, nil), o)
}

// Len is how many objects it holds.
func (m *Mem) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objects)
}
