package relay_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func mustSecrets(t *testing.T, text string) relay.Secrets {
	t.Helper()
	s, err := relay.ParseSecrets(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pushWith sends body to path with the given Authorization header (none
// when empty) and returns the status and the answer's text.
func pushWith(t *testing.T, url, auth string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// With only channel=secret lines and no * default, the other channels are
// closed, not open: refused whatever the credentials (401 without, 403
// with, as a listed channel is: TestRefusalsSayNothingOfWhichChannelsExist),
// and nothing of theirs is stored.
func TestChannelsWithoutASecretAreRefused(t *testing.T) {
	cfg := relay.DefaultConfig()
	cfg.Secrets = mustSecrets(t, "news=news-secret-0123456789\nsport=sport-secret-0123456789\n")
	hs, st, rec, _ := newRelay(t, cfg)
	body := fixture(t)
	for _, tc := range []struct {
		name, path, auth string
		status           int
	}{
		{"a listed channel with its secret", "/live/news.isml/Streams(e)", "Bearer news-secret-0123456789", 200},
		{"a listed channel with another's secret", "/live/sport.isml/Streams(e)", "Bearer news-secret-0123456789", 403},
		{"an unlisted channel without credentials", "/live/other.isml/Streams(e)", "", 401},
		{"an unlisted channel with a listed channel's secret", "/live/other.isml/Streams(e)", "Bearer news-secret-0123456789", 403},
		{"an unlisted channel with any Bearer token", "/live/other.isml/Streams(e)", "Bearer anything-at-all-0123456789", 403},
		{"an unlisted channel by path token", "/token/news-secret-0123456789/live/other.isml/Streams(e)", "", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := pushWith(t, hs.URL+tc.path, tc.auth, bytes.NewReader(body))
			if code != tc.status {
				t.Fatalf("%d %q, want %d", code, msg, tc.status)
			}
			if code == 403 && strings.Contains(tc.path, "other") {
				if !strings.Contains(msg, "wrong ingest secret for channel other") {
					t.Errorf("refusal %q is not a wrong secret's", msg)
				}
				rec.Wait(t, slog.LevelWarn, "push refused: authentication", map[string]string{"channel": "other", "status": "403", "reason": "wrong ingest secret"})
			}
		})
	}
	for _, k := range testtool.Keys(t, st) {
		if !strings.HasPrefix(k, "live/news.isml/") {
			t.Errorf("a refused push stored %s", k)
		}
	}
}

// hold opens a push to channel that stays in progress (its body never
// ends) until the test ends, and waits until the relay counts it.
func hold(t *testing.T, hs *httptest.Server, rl *relay.Relay, channel, stream string) {
	t.Helper()
	before := rl.Active()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // before hs.Close, registered earlier, waits for the request
	go func() {
		req, _ := http.NewRequest("POST", hs.URL+"/live/"+channel+".isml/Streams("+stream+")", pr)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	go func() { _, _ = pw.Write(fixture(t)[:100]) }()
	for deadline := time.Now().Add(5 * time.Second); rl.Active() <= before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the push to %s did not start", channel)
		}
	}
}

// A refused push (401, 403, 429) is answered before its body is read: a
// client whose body never ends still gets its answer at once (net/http
// would otherwise try to drain the body first), and nothing is stored.
func TestRefusalsComeBeforeTheBody(t *testing.T) {
	const own = "news-secret-0123456789"
	for _, tc := range []struct {
		name, secrets, channel, path, auth string
		status                             int
		reason, log                        string
	}{
		{"no credentials", "*=default-secret-0123456789", "ch1", "/live/ch1.isml/Streams(e)", "", 401, "credentials required", "push refused: authentication"},
		{"wrong Bearer token", "*=default-secret-0123456789", "ch1", "/live/ch1.isml/Streams(e)", "Bearer wrong-secret-0123456789", 403, "wrong ingest secret for channel ch1", "push refused: authentication"},
		{"wrong path token", "*=default-secret-0123456789", "ch1", "/token/wrong-secret-0123456789/live/ch1.isml/Streams(e)", "", 403, "wrong ingest secret for channel ch1", "push refused: authentication"},
		{"a channel without a secret", "news=" + own, "ch1", "/live/ch1.isml/Streams(e)", "Bearer " + own, 403, "wrong ingest secret for channel ch1", "push refused: authentication"},
		{"over the channel's push limit", "", "ch1", "/live/ch1.isml/Streams(b)", "", 429, "too many pushes to channel ch1", "push refused: limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.MaxStreamsPerChannel = 1
			if tc.secrets != "" {
				cfg.Secrets = mustSecrets(t, tc.secrets)
			}
			hs, st, rec, rl := newRelay(t, cfg)
			if tc.status == 429 {
				hold(t, hs, rl, tc.channel, "a")
			}
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			go func() { _, _ = pw.Write(fixture(t)[:4096]) }() // then nothing, and never the end
			type answer struct {
				code         int
				msg          string
				closes, auth bool
				err          error
			}
			got := make(chan answer, 1)
			start := time.Now()
			go func() {
				req, _ := http.NewRequest("POST", hs.URL+tc.path, pr)
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					got <- answer{err: err}
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- answer{code: resp.StatusCode, msg: string(msg), closes: resp.Close, auth: resp.Header.Get("WWW-Authenticate") != ""}
			}()
			select {
			case a := <-got:
				if a.err != nil || a.code != tc.status || !strings.Contains(a.msg, tc.reason) {
					t.Fatalf("%d %q, %v; want %d with %q", a.code, a.msg, a.err, tc.status, tc.reason)
				}
				if !a.closes {
					t.Error("the refusal does not close the connection")
				}
				if a.auth != (tc.status == 401) {
					t.Errorf("WWW-Authenticate sent: %v, want it with 401 only", a.auth)
				}
				t.Logf("answered in %v", time.Since(start).Round(time.Millisecond))
			case <-time.After(time.Second):
				t.Fatalf("no answer within 1 s to a push whose body never ends; want %d at once", tc.status)
			}
			rec.Wait(t, slog.LevelWarn, tc.log, map[string]string{"channel": tc.channel})
			if tc.status != 429 {
				if ks := testtool.Keys(t, st); len(ks) != 0 {
					t.Errorf("a refused push stored %v", ks)
				}
			}
		})
	}
}

// Pushes in progress are bounded per channel and in all: one more gets
// 429 with the reason, Retry-After and a log line; once the others end,
// it gets in.
func TestConcurrentPushLimits(t *testing.T) {
	for _, tc := range []struct {
		name              string
		perChannel, total int
		held              []string // channels with a push in progress
		push              string
		status            int
		reason            string
	}{
		{"per channel", 1, 16, []string{"ch1"}, "ch1", 429, "too many pushes to channel ch1 in progress (limit 1)"},
		{"in all, reached across channels", 16, 2, []string{"ch1", "ch2"}, "ch3", 429, "too many pushes in progress (limit 2)"},
		{"in all, reached on one channel", 16, 2, []string{"ch1", "ch1"}, "ch2", 429, "too many pushes in progress (limit 2)"},
		{"another channel under both limits", 1, 3, []string{"ch1"}, "ch2", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.MaxStreamsPerChannel, cfg.MaxStreams = tc.perChannel, tc.total
			hs, _, rec, rl := newRelay(t, cfg)
			for i, ch := range tc.held {
				hold(t, hs, rl, ch, fmt.Sprintf("held%d", i))
			}
			req, _ := http.NewRequest("POST", hs.URL+"/live/"+tc.push+".isml/Streams(new)", bytes.NewReader(fixture(t)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(msg), tc.reason) {
				t.Fatalf("%d %q, want %d with %q", resp.StatusCode, msg, tc.status, tc.reason)
			}
			if tc.status != 429 {
				return
			}
			if ra := resp.Header.Get("Retry-After"); ra != "5" {
				t.Errorf("Retry-After %q, want 5", ra)
			}
			rec.Wait(t, slog.LevelWarn, "push refused: limit", map[string]string{"channel": tc.push, "reason": tc.reason})
		})
	}
}

// A moov that declares more tracks than the limit is refused with 400 and
// the reason, before any init segment is stored.
func TestTracksPerStreamLimit(t *testing.T) {
	many := make([]synth.Track, 17)
	for i := range many {
		many[i] = synth.Track{Kind: timeline.Video, Bitrate: 10_000 * (i + 1), Width: 32, Height: 16}
	}
	s, err := synth.New(synth.Config{Tracks: many, FragmentDuration: 200 * time.Millisecond, FrameRate: 10})
	if err != nil {
		t.Fatal(err)
	}
	var seventeen bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &seventeen, synth.Range{Count: 1, End: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		maxTracks int
		body      []byte
		status    int
		reason    string
	}{
		{"17 tracks, default limit 16", 0, seventeen.Bytes(), 400, "moov declares 17 tracks, limit 16"},
		{"3 tracks, limit 2", 2, fixture(t), 400, "moov declares 3 tracks, limit 2"},
		{"3 tracks, limit 3", 3, fixture(t), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			if tc.maxTracks > 0 {
				cfg.MaxTracks = tc.maxTracks
			}
			hs, st, rec, _ := newRelay(t, cfg)
			code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", tc.body, true)
			if code != tc.status || !strings.Contains(msg, tc.reason) {
				t.Fatalf("%d %q, want %d with %q", code, msg, tc.status, tc.reason)
			}
			if tc.status == 200 {
				return
			}
			rec.Wait(t, slog.LevelWarn, "push refused", map[string]string{"channel": "ch1", "err": tc.reason})
			if ks := testtool.Keys(t, st); len(ks) != 0 {
				t.Errorf("a refused moov stored %v", ks)
			}
		})
	}
}

// An encoder that goes silent mid-body is dropped after ReadTimeout: 408
// with the reason, the connection closed, and a log line; a slow one that
// keeps sending is not.
func TestSilentEncoderIsDropped(t *testing.T) {
	body := fixture(t)
	moov := nth(t, body, "moov", 0)
	moof := nth(t, body, "moof", 1)
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		sent []byte
	}{
		{"silent before the first byte of the body", nil},
		{"silent between boxes", body[:moov.at+moov.size]},
		{"silent inside a moof", body[:moof.at+20]},
		{"silent inside an mdat", body[:nth(t, body, "mdat", 1).at+100]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.ReadTimeout = timeout
			hs, _, rec, _ := newRelay(t, cfg)
			conn := testtool.RawRequest(t, hs.URL, "POST /live/ch1.isml/Streams(quiet) HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n")
			if len(tc.sent) > 0 {
				if _, err := conn.Write(testtool.Chunk(tc.sent)); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			resp, msg, br := readResponse(t, conn, 5*time.Second)
			took := time.Since(start)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(msg, "timeout") {
				t.Fatalf("%s %q, want 408 naming the timeout", resp.Status, msg)
			}
			if took < timeout-50*time.Millisecond || took > timeout+2*time.Second {
				t.Errorf("answered after %v, want about the read timeout (%v)", took, timeout)
			}
			if !resp.Close {
				t.Error("the answer does not close the connection")
			}
			closedWithin(t, conn, br, time.Second)
			rec.Wait(t, slog.LevelWarn, "push dropped", map[string]string{"channel": "ch1", "stream": "quiet", "err": "timeout"})
		})
	}
}

// malformedPushes are bodies that are bad from their first fragment on,
// with the answer each must get.
func malformedPushes(t *testing.T) []struct {
	name   string
	body   []byte
	status int
	reason string
	log    string
} {
	body := fixture(t)
	moov, moof := nth(t, body, "moov", 0), nth(t, body, "moof", 0)
	header := body[:moof.at] // ftyp, the SMIL uuid, moov
	return []struct {
		name   string
		body   []byte
		status int
		reason string
		log    string
	}{
		{"not MP4", []byte("hello, this is not an mp4 stream at all"), 400, "not a box type", "push refused"},
		{"moof before moov", append(append([]byte{}, body[:moov.at]...), body[moof.at:]...), 400, "before any moov", "push refused"},
		{"a moof followed by another moof", append(bytes.Clone(body[:moof.at+moof.size]), body[moof.at:]...), 400, "is followed by moof, not mdat", "push refused"},
		{"an mdat without a moof", append(bytes.Clone(header), body[moof.at+moof.size:]...), 400, "without a moof", "push refused"},
		{"a moof naming a track the moov does not declare", withTrackID(t, body, 0, 9), 400, "names track 9, which the moov does not declare", "push refused"},
		{"garbage SMIL", garbageSMIL(t, body), 400, "parse live server manifest", "push refused"},
		{"an hvc1 sample entry without its hvcC", inMoov(t, body, "avc1", "hvc1"), 400, "unsupported codec: video sample entry", "push refused"},
		{"an ac-3 sample entry without its dac3", inMoov(t, body, "mp4a", "ac-3"), 400, "unsupported codec: audio sample entry", "push refused"},
		{"size 0: an mdat to the end of the stream, without a moof", append(bytes.Clone(header), 0, 0, 0, 0, 'm', 'd', 'a', 't', 1, 2, 3), 400, "without a moof", "push refused"},
		{"size 0: a moof to the end of the stream, so without its mdat", append(bytes.Clone(header), append([]byte{0, 0, 0, 0}, body[moof.at+4:moof.at+moof.size]...)...), 400, "without its mdat", "push refused"},
		{"size 1: a largesize below 16", append(bytes.Clone(header), 0, 0, 0, 1, 'm', 'o', 'o', 'f', 0, 0, 0, 0, 0, 0, 0, 9), 400, "largesize 9", "push refused"},
		{"size 1: a huge largesize", append(bytes.Clone(header), 0, 0, 0, 1, 'm', 'd', 'a', 't', 0x40, 0, 0, 0, 0, 0, 0, 0), 413, "larger than the limit", "push refused: box too large"},
		{"huge 32-bit size", append(bytes.Clone(header), 0xff, 0xff, 0xff, 0xff, 'm', 'd', 'a', 't'), 413, "larger than the limit", "push refused: box too large"},
		{"size below 8", append(bytes.Clone(header), 0, 0, 0, 5, 'f', 'r', 'e', 'e'), 400, "free size 5", "push refused"},
		{"truncated inside the moov", body[:moov.at+moov.size/2], 400, "inside a box", "push dropped"},
		{"truncated inside the first fragment", body[:moof.at+moof.size+10], 400, "inside a box", "push dropped"},
	}
}

// Malformed media pushed into a channel that already has a stream: each
// gets its 4xx with the reason and a log line, and every object the
// channel had (init segments, fragments, end markers) is still there,
// byte for byte, with nothing new or partial beside it. What the manifest
// function reads is the objects, so its manifests are untouched too.
func TestMalformedMediaLeavesTheChannelAsItWas(t *testing.T) {
	hs, st, rec, _ := newRelay(t, relay.DefaultConfig())
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", fixture(t), true); code != 200 {
		t.Fatalf("good push: %d %s", code, msg)
	}
	before := snapshot(t, st)
	if len(before) != 12 {
		t.Fatalf("the good push stored %d objects, want 12", len(before))
	}
	for _, tc := range malformedPushes(t) {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", tc.body, true)
			if code != tc.status || !strings.Contains(msg, tc.reason) {
				t.Fatalf("%d %q, want %d with %q", code, msg, tc.status, tc.reason)
			}
			rec.Wait(t, slog.LevelWarn, tc.log, map[string]string{"channel": "ch1", "stream": "enc1", "err": tc.reason})
			after := snapshot(t, st)
			for k, v := range before {
				if w, ok := after[k]; !ok {
					t.Errorf("%s is gone", k)
				} else if w != v {
					t.Errorf("%s changed", k)
				}
			}
			for k := range after {
				if _, ok := before[k]; !ok {
					t.Errorf("the refused push wrote %s", k)
				}
			}
		})
	}
}

// storedFragments returns the stored fragments: key to bytes.
func storedFragments(t *testing.T, st *store.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range testtool.Keys(t, st) {
		if obj, _ := layout.Parse(k); obj.Kind == layout.KindFragment {
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = o.Body
		}
	}
	return out
}

// A moof naming an undeclared track after good fragments: 400 with the
// reason; the fragments before it are stored as a good push stores them,
// and nothing of it or after it.
func TestUnknownTrackAfterGoodFragments(t *testing.T) {
	body := fixture(t)
	hs, ref, _, _ := newRelay(t, relay.DefaultConfig())
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", body, true); code != 200 {
		t.Fatalf("reference push: %d %s", code, msg)
	}
	want := storedFragments(t, ref)
	for _, bad := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("moof %d", bad), func(t *testing.T) {
			hs, st, rec, _ := newRelay(t, relay.DefaultConfig())
			code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", withTrackID(t, body, bad, 7), true)
			if code != 400 || !strings.Contains(msg, "names track 7, which the moov does not declare") {
				t.Fatalf("%d %q, want 400 naming the undeclared track", code, msg)
			}
			rec.Wait(t, slog.LevelWarn, "push refused", map[string]string{"err": "track 7"})
			got := storedFragments(t, st)
			if len(got) != bad {
				t.Errorf("stored %d fragments, want the %d before the bad moof", len(got), bad)
			}
			for k, b := range got {
				if !bytes.Equal(b, want[k]) {
					t.Errorf("%s differs from what a good push stores", k)
				}
			}
		})
	}
}

// Box size fields 0 (to the end of the stream) and 1 (a 64-bit size
// follows) on good boxes are read as the boxes they are: the push is
// accepted and stores, byte for byte, what the plain push stores.
func TestBoxSizesZeroAndOneAreAccepted(t *testing.T) {
	body := fixture(t)
	hs, ref, _, _ := newRelay(t, relay.DefaultConfig())
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", body, true); code != 200 {
		t.Fatalf("reference push: %d %s", code, msg)
	}
	want := storedFragments(t, ref)
	mfra := nth(t, body, "mfra", 0)
	last := nth(t, body, "mdat", 5)
	if last.at+last.size != mfra.at {
		t.Fatal("the fixture's last mdat is not followed by its mfra")
	}
	lastMdat := bytes.Clone(body[:mfra.at]) // no mfra, and the last mdat sized 0
	copy(lastMdat[last.at:], []byte{0, 0, 0, 0})
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"the last mdat sized 0, to the end of the stream", lastMdat},
		{"a trailing free box sized 0", append(bytes.Clone(body), 0, 0, 0, 0, 'f', 'r', 'e', 'e', 1, 2, 3)},
		{"ftyp with a 64-bit size", largesize(body, nth(t, body, "ftyp", 0))},
		{"moov with a 64-bit size", largesize(body, nth(t, body, "moov", 0))},
		{"an mdat with a 64-bit size", largeMdat(t, body, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, st, _, _ := newRelay(t, relay.DefaultConfig())
			if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", tc.body, true); code != 200 {
				t.Fatalf("%d %q, want 200", code, msg)
			}
			got := storedFragments(t, st)
			if len(got) != len(want) {
				t.Fatalf("stored %d fragments, want %d", len(got), len(want))
			}
			for k, b := range got {
				if _, err := fmp4.Inspect(b); err != nil {
					t.Errorf("%s: %v", k, err)
				}
				if !bytes.Equal(b, want[k]) {
					t.Errorf("%s differs from what the plain push stores", k)
				}
			}
		})
	}
}

// largeMdat returns body with the n-th mdat given a 64-bit size, and the
// trun of its moof pointing 8 bytes further, as an encoder writes it.
func largeMdat(t *testing.T, body []byte, n int) []byte {
	t.Helper()
	out := largesize(body, nth(t, body, "mdat", n))
	moof := nth(t, out, "moof", n)
	i := bytes.Index(out[moof.at:moof.at+moof.size], []byte("trun"))
	if i < 0 || out[moof.at+i+7]&1 == 0 {
		t.Fatal("moof without a trun data offset")
	}
	off := moof.at + i + 12 // after type, version/flags and sample count
	binary.BigEndian.PutUint32(out[off:], binary.BigEndian.Uint32(out[off:])+8)
	return out
}

// A moof larger than the manifest function reads (fmp4.MaxMoof, once
// rewritten) is refused with 413 at its header, pushed or uploaded, and
// nothing of it is stored: before, the relay stored it and its event
// failed on every retry.
func TestAMoofTheFunctionCannotReadIsRefused(t *testing.T) {
	hs, st, _ := setup(t)
	body := fixture(t)
	moof := nth(t, body, "moof", 0)
	huge := binary.BigEndian.AppendUint32(bytes.Clone(body[:moof.at]), uint32(fmp4.MaxMoofIn+1))
	huge = append(append(huge, "moof"...), make([]byte, fmp4.MaxMoofIn+1-8)...)
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/bigmoof.isml/Streams(e)", huge, true); code != 413 || !strings.Contains(msg, "moof") {
		t.Errorf("a push of a %d-byte moof: %d %q, want 413", fmp4.MaxMoofIn+1, code, msg)
	}
	inits, _ := cmafRenditions(t, 1)
	seg := binary.BigEndian.AppendUint32(nil, uint32(fmp4.MaxMoofIn+1))
	seg = append(append(seg, "moof"...), make([]byte, fmp4.MaxMoofIn+1-8)...)
	seg = append(seg, 0, 0, 0, 8, 'm', 'd', 'a', 't')
	testtool.Do(t, "PUT", hs.URL+"/live/bigmoof.isml/init-stream0.m4s", inits[0], true)
	if code, msg := testtool.Do(t, "PUT", hs.URL+"/live/bigmoof.isml/chunk-stream0-00001.m4s", seg, true); code != 413 {
		t.Errorf("an upload of a %d-byte moof: %d %q, want 413", fmp4.MaxMoofIn+1, code, msg)
	}
	for _, k := range testtool.Keys(t, st) {
		if obj, err := layout.Parse(k); err == nil && obj.Kind == layout.KindFragment {
			t.Errorf("stored %s", k)
		}
	}
}
