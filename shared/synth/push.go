package synth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Range selects the fragments a push sends and how.
type Range struct {
	From  int // first fragment index
	Count int // number of fragments
	// Realtime paces the push like a live encoder: fragment From+i is sent
	// (i+1) fragment durations after the push starts.
	Realtime bool
	// End sends the mfra box that tells the receiver the stream ended.
	End bool
}

// WriteTo writes the header and the fragments of r to w. It stops early
// with ctx's error when ctx ends.
func (s *Stream) WriteTo(ctx context.Context, w io.Writer, r Range) (int64, error) {
	var n int64
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += int64(m)
		return err
	}
	hdr, err := s.Header()
	if err != nil {
		return 0, err
	}
	if err := write(hdr); err != nil {
		return n, err
	}
	began := time.Now()
	var frag []byte
	for i := range r.Count {
		if r.Realtime {
			due := began.Add(time.Duration(i+1) * s.cfg.FragmentDuration)
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(time.Until(due)):
			}
		} else if err := ctx.Err(); err != nil {
			return n, err
		}
		if frag, err = s.AppendFragment(frag[:0], r.From+i); err != nil {
			return n, err
		}
		if err := write(frag); err != nil {
			return n, err
		}
	}
	if r.End {
		if err := write(s.Trailer()); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Push sends the stream in one chunked HTTP POST to url, the way a Smooth
// Streaming encoder does, and returns when the server has answered.
// A status other than 2xx is an error that carries the server's reason.
func Push(ctx context.Context, client *http.Client, url string, s *Stream, r Range) error {
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		_, err := s.WriteTo(ctx, pw, r)
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		pr.Close()
		return fmt.Errorf("synth push: %w", err)
	}
	req.ContentLength = -1 // chunked, as encoders send it
	req.Header.Set("Content-Type", "video/mp4")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("synth push to %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("synth push to %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
