package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// SPEKEConfig configures a SPEKE v2 key source. URL is required; the
// zero value of every other field is its default.
type SPEKEConfig struct {
	// URL is the key server's SPEKE v2 endpoint (POST).
	URL string
	// Scheme is the channels' protection scheme, asked of the key server
	// as commonEncryptionScheme; default cbcs.
	Scheme cenc.Scheme
	// RotateEvery is the number of fragments per key period; 0: one key
	// per channel (period 0, asked without a ContentKeyPeriodList).
	RotateEvery int
	// Systems are the DRM systems asked for, in the order of a period's
	// pssh boxes; default Widevine, PlayReady, FairPlay. ClearKey is not
	// a key server's (use a key file).
	Systems []cenc.SystemID
	// ContentIDPrefix is put before the channel's name in CPIX@contentId
	// (e.g. "smoothcast/prod/").
	ContentIDPrefix string
	// KIDSalt keys the KIDs' derivation (see SPEKE): the same for all
	// the relays of a deployment, another for another deployment (KIDs
	// are public: it need not be secret).
	KIDSalt []byte
	// Channels are the channels encrypted; none: every channel.
	Channels []string
	// Credentials, when set, sign each request with AWS SigV4 (service
	// execute-api, in Region): a key server behind an API Gateway with
	// IAM authorization. On AWS: the relay's role's credentials.
	Credentials aws.CredentialsProvider
	// Region is the API Gateway's region (required with Credentials).
	Region string
	// HTTPClient sends the requests; default http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds one request; default 5 s.
	Timeout time.Duration
	// Attempts is the number of requests for one period before it fails
	// (a network error, 429 or 5xx is tried again); default 3.
	Attempts int
	// Backoff is the wait before the second attempt, doubled for each
	// next; default 250 ms.
	Backoff time.Duration
	// Hold is how long, after a period failed, the channel's new periods
	// are answered with its last one (and a *StaleError) without asking
	// the key server; default 5 s.
	Hold time.Duration
	// CachePeriods is the number of periods kept per channel (older ones
	// are dropped; the last good one is always kept); default 4.
	CachePeriods int
	// Logger gets a line per period fetched and per failure; default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock (holds and signing); default time.Now.
	Now func() time.Time
}

// SPEKE is a Source of keys from a DRM vendor's key server over SPEKE
// v2.0 (AWS's Secure Packager and Encoder Key Exchange: CPIX 2.3
// documents, X-Speke-Version 2.0). It asks one content key per channel
// and period for all audio and video tracks (encryption contract
// intendedTrackType ALL), with the KID it derives (see deriveKID: the
// same for every relay), and each system's pssh (FairPlay's: the skd://
// URI of the key server's HLS signalling, as smoothcast's FairPlay pssh).
// Keys are asked as plain values (pskc:PlainValue) over HTTPS: content
// key encryption with a document key is not supported.
//
// It keeps the channel's last CachePeriods periods, and fetches period
// n+1 as soon as period n is asked for. When the key server fails, a
// channel's later periods are its last good one with a *StaleError.
// Safe for concurrent use; Close stops its fetches.
type SPEKE struct {
	cfg      SPEKEConfig
	url      string
	channels map[string]bool
	signer   *v4.Signer
	log      *slog.Logger

	ctx    context.Context // the fetches'; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards state, each channelKeys in it, and each fetch's p and err
	// until its done is closed (after that they are read without it). It
	// is the only lock: never held while waiting for a fetch or the key
	// server.
	mu    sync.Mutex
	state map[string]*channelKeys
}

// channelKeys is one channel's periods.
type channelKeys struct {
	periods   map[uint64]*fetch
	last      *fetch    // the highest good period (kept when dropped from periods)
	holdUntil time.Time // after a failure: no new request before
	lastErr   error
}

// fetch is one period asked of the key server; done is closed once p or
// err is set.
type fetch struct {
	n    uint64
	done chan struct{}
	p    cenc.Period
	err  error
}

// NewSPEKE checks cfg and returns the source.
func NewSPEKE(cfg SPEKEConfig) (*SPEKE, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("SPEKE: key server URL %q: want http(s)://host/path", cfg.URL)
	}
	if cfg.Scheme == "" {
		cfg.Scheme = cenc.CBCS
	}
	if _, err := cenc.ParseScheme(string(cfg.Scheme)); err != nil {
		return nil, fmt.Errorf("SPEKE: %w", err)
	}
	if cfg.RotateEvery < 0 {
		return nil, fmt.Errorf("SPEKE: key rotation every %d fragments", cfg.RotateEvery)
	}
	if len(cfg.Systems) == 0 {
		cfg.Systems = []cenc.SystemID{cenc.Widevine, cenc.PlayReady, cenc.FairPlay}
	}
	for i, id := range cfg.Systems {
		if id == cenc.ClearKey {
			return nil, errors.New("SPEKE: ClearKey keys come from a key file, not a key server")
		}
		if slices.Contains(cfg.Systems[:i], id) {
			return nil, fmt.Errorf("SPEKE: DRM system %s twice", cenc.SystemName(id))
		}
	}
	s := &SPEKE{url: cfg.URL, state: map[string]*channelKeys{}}
	if len(cfg.Channels) > 0 {
		s.channels = map[string]bool{}
		for _, ch := range cfg.Channels {
			if !layout.ValidName(ch) {
				return nil, fmt.Errorf("SPEKE: %q is no channel name", ch)
			}
			s.channels[ch] = true
		}
	}
	if cfg.Credentials != nil {
		if cfg.Region == "" {
			return nil, errors.New("SPEKE: SigV4 signing needs the key server's region")
		}
		s.signer = v4.NewSigner()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 250 * time.Millisecond
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 5 * time.Second
	}
	if cfg.CachePeriods < 2 {
		cfg.CachePeriods = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s.cfg = cfg
	s.log = cfg.Logger.With("key_server", u.Host)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close stops the fetches under way and waits for them to end. Period
// answers after Close only from what it has.
func (s *SPEKE) Close() {
	s.cancel()
	s.wg.Wait()
}

// Plan is the configured scheme and rotation, for the configured
// channels (every valid channel name when none is).
func (s *SPEKE) Plan(channel string) (Plan, bool) {
	if !s.encrypts(channel) {
		return Plan{}, false
	}
	return Plan{Scheme: s.cfg.Scheme, RotateEvery: s.cfg.RotateEvery}, true
}

func (s *SPEKE) encrypts(channel string) bool {
	if s.channels != nil {
		return s.channels[channel]
	}
	return layout.ValidName(channel)
}

// Period is channel's key period n (0 without rotation, whatever n), asked of the
// key server once (callers asking at once share the request) and kept;
// period n+1 is then fetched ahead. When the key server fails (after
// the retries) it is the channel's last period before n with a
// *StaleError, and, for Hold, later periods are answered so without
// asking; with no period before n, an error. ctx bounds the wait, not
// the fetch (which others may share).
func (s *SPEKE) Period(ctx context.Context, channel string, n uint64) (cenc.Period, error) {
	if !s.encrypts(channel) {
		return cenc.Period{}, fmt.Errorf("channel %s: not encrypted by the key server", channel)
	}
	if s.cfg.RotateEvery == 0 {
		n = 0 // one key: every period is period 0
	}
	s.mu.Lock()
	ck := s.channel(channel)
	f, ok := ck.periods[n]
	if !ok {
		if s.cfg.Now().Before(ck.holdUntil) {
			err := ck.lastErr
			s.mu.Unlock()
			return s.stale(channel, n, err)
		}
		f = s.start(ck, channel, n)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return cenc.Period{}, fmt.Errorf("channel %s: key period %d: %w", channel, n, ctx.Err())
	}
	if f.err != nil {
		return s.stale(channel, n, f.err)
	}
	if s.cfg.RotateEvery > 0 {
		s.prefetch(channel, n+1)
	}
	return f.p, nil
}

// channel is channel's state, made on first use. s.mu is held.
func (s *SPEKE) channel(name string) *channelKeys {
	ck := s.state[name]
	if ck == nil {
		ck = &channelKeys{periods: map[uint64]*fetch{}}
		s.state[name] = ck
	}
	return ck
}

// prefetch starts fetching channel's period n unless it is kept, under
// way, or the channel is held after a failure.
func (s *SPEKE) prefetch(channel string, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ck := s.channel(channel)
	if _, ok := ck.periods[n]; ok || s.cfg.Now().Before(ck.holdUntil) {
		return
	}
	s.start(ck, channel, n)
}

// start registers channel's period n and fetches it in a goroutine of
// its own (Close waits for it). s.mu is held.
func (s *SPEKE) start(ck *channelKeys, channel string, n uint64) *fetch {
	f := &fetch{n: n, done: make(chan struct{})}
	if err := s.ctx.Err(); err != nil { // closed: no new fetch
		f.err = fmt.Errorf("channel %s: key period %d: key source closed: %w", channel, n, err)
		close(f.done)
		return f
	}
	ck.periods[n] = f
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		p, err := s.fetch(s.ctx, channel, n)
		s.mu.Lock()
		defer s.mu.Unlock()
		f.p, f.err = p, err
		ck := s.state[channel]
		switch {
		case ck == nil || ck.periods[n] != f:
			// Not this channel's fetch of n any more: the waiters get the
			// answer, nothing is kept.
		case err != nil:
			delete(ck.periods, n) // asked again once the hold is over
			ck.holdUntil, ck.lastErr = s.cfg.Now().Add(s.cfg.Hold), err
		default:
			if ck.last == nil || n >= ck.last.n {
				ck.last = f
			}
			s.trim(ck)
		}
		close(f.done)
	}()
	return f
}

// trim drops the lowest finished periods beyond CachePeriods. s.mu is held.
func (s *SPEKE) trim(ck *channelKeys) {
	for len(ck.periods) > s.cfg.CachePeriods {
		var low *fetch
		for _, f := range ck.periods {
			if f.p.Key != (cenc.Key{}) && (low == nil || f.n < low.n) {
				low = f
			}
		}
		if low == nil {
			return
		}
		delete(ck.periods, low.n)
	}
}

// stale is channel's best period before n with a *StaleError for err;
// an error with none.
func (s *SPEKE) stale(channel string, n uint64, err error) (cenc.Period, error) {
	s.mu.Lock()
	var best *fetch
	if ck := s.state[channel]; ck != nil {
		if ck.last != nil && ck.last.n < n {
			best = ck.last
		} else {
			for _, f := range ck.periods {
				if f.n < n && f.p.Key != (cenc.Key{}) && (best == nil || f.n > best.n) {
					best = f
				}
			}
		}
	}
	s.mu.Unlock()
	if best == nil {
		return cenc.Period{}, fmt.Errorf("channel %s: no key for period %d: %w", channel, n, err)
	}
	return best.p, &StaleError{Channel: channel, Want: n, Have: best.n, Err: err}
}

// fetch asks the key server for channel's period n, trying again after
// a network error, 429 or 5xx, with a doubling backoff.
func (s *SPEKE) fetch(ctx context.Context, channel string, n uint64) (cenc.Period, error) {
	contentID := s.cfg.ContentIDPrefix + channel
	q := query{
		channel: channel, n: n, rotating: s.cfg.RotateEvery > 0,
		contentID: contentID, kid: deriveKID(s.cfg.KIDSalt, contentID, n),
		scheme: s.cfg.Scheme, systems: s.cfg.Systems,
	}
	doc := requestDocument(q)
	wait := s.cfg.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		var p cenc.Period
		var again bool
		p, again, err = s.post(ctx, q, doc)
		if err == nil {
			return p, nil
		}
		s.log.Warn("key server request failed", "channel", channel, "period", n, "attempt", attempt, "err", err)
		if !again || attempt == s.cfg.Attempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return cenc.Period{}, fmt.Errorf("channel %s: key period %d: %w (after %v)", channel, n, ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
	return cenc.Period{}, err
}

// maxResponse bounds a key server's answer (a CPIX document of one key
// and a few systems is a few KB).
const maxResponse = 1 << 20

// post sends one request; again says whether a failure is worth another.
func (s *SPEKE) post(ctx context.Context, q query, doc []byte) (p cenc.Period, again bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	fail := func(again bool, format string, args ...any) (cenc.Period, bool, error) {
		return cenc.Period{}, again, fmt.Errorf("channel %s: key period %d: key server: %w", q.channel, q.n, fmt.Errorf(format, args...))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(doc))
	if err != nil {
		return fail(false, "%w", err)
	}
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("X-Speke-Version", spekeVersion)
	if s.signer != nil {
		creds, err := s.cfg.Credentials.Retrieve(ctx)
		if err != nil {
			return fail(true, "AWS credentials: %w", err)
		}
		sum := sha256.Sum256(doc)
		if err := s.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", s.cfg.Region, s.cfg.Now()); err != nil {
			return fail(false, "SigV4: %w", err)
		}
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fail(true, "%w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fail(true, "reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body[:min(len(body), 200)]))
		again := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return fail(again, "%s: %q", resp.Status, msg)
	}
	if len(body) > maxResponse {
		return fail(false, "answer longer than %d bytes", maxResponse)
	}
	if v := resp.Header.Get("X-Speke-Version"); v != spekeVersion {
		return fail(false, "X-Speke-Version %q, asked %s", v, spekeVersion)
	}
	p, err = parseResponse(body, q)
	if err != nil {
		return cenc.Period{}, false, fmt.Errorf("key server: %w", err)
	}
	s.log.Info("key period fetched", "channel", q.channel, "period", q.n, "key", p.Key,
		"key_server_agent", resp.Header.Get("X-Speke-User-Agent"))
	return p, false, nil
}
