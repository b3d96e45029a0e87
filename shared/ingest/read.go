package ingest

import (
	"context"
	"errors"
	"io"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// ReadOptions tune Read.
type ReadOptions struct {
	// Boundary, when set, is told before each box is read whether the
	// session is between fragments (Session.Between): a reader that must
	// stop a push cleanly stops it there, before the next box's first byte.
	Boundary func(between bool)
	// Alloc, when set, is asked before the box reader's buffer grows by n
	// bytes (a memory budget): its error ends the read with that error.
	// Free is given back, when Read returns, all that Alloc granted.
	Alloc func(n int) error
	Free  func(n int)
}

// Read feeds s the boxes of body until body ends, reading one box at a
// time and nothing ahead (mp4box.Reader, boxes up to Options.MaxBox, and
// Options.Limit and MaxServerManifest per type, refused once their header
// is read). It returns nil when body ended cleanly between boxes, a
// *ProtocolError for malformed input (mp4box.ErrTruncated inside it when
// body ended inside a box), and the session's, the sink's and body's
// other errors as they are. Stats.Bytes counts every byte read.
func Read(ctx context.Context, body io.Reader, s *Session, o ReadOptions) (Stats, error) {
	br := mp4box.NewReader(body, s.opts.MaxBox)
	br.SetLimit(s.limit)
	if o.Alloc != nil {
		br.Budget(o.Alloc)
	}
	if o.Free != nil {
		defer func() { o.Free(br.Allocated()) }()
	}
	stats := func() Stats {
		st := s.Stats()
		st.Bytes = br.Offset()
		return st
	}
	for {
		if err := ctx.Err(); err != nil {
			return stats(), err
		}
		if o.Boundary != nil {
			o.Boundary(s.Between())
		}
		box, err := br.Next()
		if err == io.EOF {
			return stats(), s.Close()
		}
		if err != nil {
			if errors.Is(err, mp4box.ErrBadBox) || errors.Is(err, mp4box.ErrTooLarge) || errors.Is(err, mp4box.ErrTruncated) {
				return stats(), &ProtocolError{Err: err}
			}
			return stats(), err
		}
		if err := s.Box(ctx, box); err != nil {
			return stats(), err
		}
	}
}
