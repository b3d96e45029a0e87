// Package bucket keeps what a bucket holds under a prefix as a file, and
// puts it back: a fixture of the objects one component stores, for the
// tests of the component that reads them (the relay's objects for the
// manifest function's tests), with a test of the first that the file is
// still what it stores.
package bucket

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/smoothcast/smoothcast/shared/store"
)

// Object is one stored object, its key relative to the prefix it was
// read under.
type Object struct {
	Key         string            `json:"key"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Body        []byte            `json:"body"`
}

// Read reads every object under prefix, in key order.
func Read(ctx context.Context, st *store.Store, prefix string) ([]Object, error) {
	var keys []string
	if err := st.List(ctx, prefix, func(page []store.Listed) error {
		for _, o := range page {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]Object, 0, len(keys))
	for _, k := range keys {
		o, err := st.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, Object{Key: strings.TrimPrefix(k, prefix), ContentType: o.ContentType, Metadata: o.Metadata, Body: o.Body})
	}
	return out, nil
}

// Write puts objs under prefix, in their order.
func Write(ctx context.Context, st *store.Store, prefix string, objs []Object) error {
	for _, o := range objs {
		if _, err := st.Put(ctx, prefix+o.Key, o.Body, store.PutOptions{ContentType: o.ContentType, Metadata: o.Metadata}); err != nil {
			return fmt.Errorf("bucket fixture: %w", err)
		}
	}
	return nil
}

// Load reads a fixture file.
func Load(path string) ([]Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []Object
	if err := json.Unmarshal(b, &objs); err != nil {
		return nil, fmt.Errorf("bucket fixture %s: %w", path, err)
	}
	return objs, nil
}

// Save writes a fixture file.
func Save(path string, objs []Object) error {
	b, err := json.MarshalIndent(objs, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
