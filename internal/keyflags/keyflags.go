// Package keyflags reads a relay's encryption settings (issue 20), the
// same flags for the AWS relay (functions/ingest) and `smoothcast run`,
// and makes the key source they describe: static keys from a key file or
// an SSM SecureString parameter, or a SPEKE v2 key server.
package keyflags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/keys"
)

// Options are the encryption flags.
type Options struct {
	// KeyFile is -key-file: lines {channel}={KID hex}:{key hex}.
	KeyFile string
	// KeyParameter is -key-parameter: an SSM SecureString holding the
	// key file's text (the AWS relay only).
	KeyParameter string
	// Scheme is -encryption-scheme: cbcs (default) or cenc.
	Scheme string
	// SPEKE are the key server's flags.
	SPEKE SPEKEOptions
}

// SPEKEOptions are the flags of a SPEKE v2 key server.
type SPEKEOptions struct {
	URL      string // -speke-url
	Channels string // -speke-channels: the channels it encrypts, comma-separated (* for all)
	Systems  string // -speke-systems: the DRM systems, comma-separated
	// RotateEvery is -key-rotation-fragments: a new key every so many
	// fragments (0: one key per channel).
	RotateEvery int
	// Region, when set, signs the requests with SigV4 for API Gateway
	// (-speke-sigv4-region), with the relay's AWS credentials.
	Region string
	// ContentID is -speke-content-id: put before the channel's name in
	// the key server's contentId, and what the key IDs are derived from
	// (one per deployment, the same for its relays).
	ContentID string
}

// Define declares the flags on fs; withParameter adds -key-parameter.
func (o *Options) Define(fs *config.Set, withParameter bool) {
	fs.StringVar(&o.KeyFile, "key-file", "", "encrypt the channels of this file, one line {channel}={KID hex}:{key hex} each (static keys: ClearKey and tests); none: channels are stored in the clear")
	if withParameter {
		fs.StringVar(&o.KeyParameter, "key-parameter", "", "SSM parameter (SecureString) holding the key file's lines, instead of -key-file")
	}
	fs.StringVar(&o.Scheme, "encryption-scheme", string(cenc.CBCS), "the Common Encryption scheme: cbcs (one copy for HLS and DASH, FairPlay, Widevine and PlayReady) or cenc (AES-CTR, for older DASH players)")
	fs.StringVar(&o.SPEKE.URL, "speke-url", "", "SPEKE v2 key server URL (a DRM vendor's): encrypt the channels of -speke-channels with its keys")
	fs.StringVar(&o.SPEKE.Channels, "speke-channels", "*", "with -speke-url, the channels it encrypts, comma-separated (* for all)")
	fs.StringVar(&o.SPEKE.Systems, "speke-systems", "widevine,playready,fairplay", "with -speke-url, the DRM systems to ask the key server for, comma-separated (clearkey, widevine, playready, fairplay or a system ID)")
	fs.IntVar(&o.SPEKE.RotateEvery, "key-rotation-fragments", 0, "with -speke-url, a new key every so many fragments of a track (0: one key per channel)")
	fs.StringVar(&o.SPEKE.Region, "speke-sigv4-region", "", "with -speke-url, sign its requests with SigV4 (API Gateway, IAM authorization) in this region, with the relay's AWS credentials")
	fs.StringVar(&o.SPEKE.ContentID, "speke-content-id", "smoothcast/", "with -speke-url, what the key server's contentId starts with (the channel's name follows) and the key IDs are derived from: one per deployment, the same for its relays")
}

// ErrBoth refuses static keys and a key server at once.
var ErrBoth = errors.New("-key-file or -key-parameter, and -speke-url: give one")

// Source makes the key source the options describe (nil: no
// encryption), and says in a few words where its keys come from. ssm
// gives the SSM client -key-parameter is read with; a key server's
// client logs to log.
func (o *Options) Source(ctx context.Context, log *slog.Logger, ssm func(context.Context) (keys.SSMGetter, error)) (keys.Source, string, error) {
	scheme, err := cenc.ParseScheme(o.Scheme)
	if err != nil {
		return nil, "", fmt.Errorf("-encryption-scheme: %w", err)
	}
	static := o.KeyFile != "" || o.KeyParameter != ""
	switch {
	case static && o.SPEKE.URL != "":
		return nil, "", ErrBoth
	case o.KeyFile != "" && o.KeyParameter != "":
		return nil, "", errors.New("-key-file and -key-parameter: give one")
	case o.KeyFile != "":
		f, err := os.Open(o.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("-key-file: %w", err)
		}
		defer f.Close()
		ks, err := keys.ParseKeyFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("-key-file %s: %w", o.KeyFile, err)
		}
		return keys.NewStatic(ks, scheme), fmt.Sprintf("key file (%d channels, %s)", len(ks), scheme), nil
	case o.KeyParameter != "":
		c, err := ssm(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("-key-parameter: %w", err)
		}
		ks, err := keys.LoadParameter(ctx, c, o.KeyParameter)
		if err != nil {
			return nil, "", fmt.Errorf("-key-parameter: %w", err)
		}
		return keys.NewStatic(ks, scheme), fmt.Sprintf("SSM parameter %s (%d channels, %s)", o.KeyParameter, len(ks), scheme), nil
	case o.SPEKE.URL != "":
		return o.speke(ctx, log, scheme)
	}
	if o.SPEKE.RotateEvery != 0 {
		return nil, "", errors.New("-key-rotation-fragments needs -speke-url")
	}
	return nil, "none", nil
}

// channelList reads a comma-separated list of channels ("*": all, nil).
func channelList(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c == "*" {
			return nil
		} else if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// systemList reads a comma-separated list of DRM systems.
func systemList(s string) ([]cenc.SystemID, error) {
	var out []cenc.SystemID
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		id, err := cenc.ParseSystem(n)
		if err != nil {
			return nil, fmt.Errorf("-speke-systems: %w", err)
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, errors.New("-speke-systems: name at least one DRM system")
	}
	return out, nil
}

// speke is the SPEKE v2 key source of the options.
func (o *Options) speke(ctx context.Context, log *slog.Logger, scheme cenc.Scheme) (keys.Source, string, error) {
	systems, err := systemList(o.SPEKE.Systems)
	if err != nil {
		return nil, "", err
	}
	if o.SPEKE.RotateEvery < 0 {
		return nil, "", fmt.Errorf("-key-rotation-fragments %d: want 0 or more", o.SPEKE.RotateEvery)
	}
	cfg := keys.SPEKEConfig{URL: o.SPEKE.URL, Scheme: scheme, RotateEvery: o.SPEKE.RotateEvery, Systems: systems,
		ContentIDPrefix: o.SPEKE.ContentID, KIDSalt: []byte(o.SPEKE.ContentID), Channels: channelList(o.SPEKE.Channels), Logger: log}
	if o.SPEKE.Region != "" {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(o.SPEKE.Region))
		if err != nil {
			return nil, "", fmt.Errorf("-speke-sigv4-region: AWS config: %w", err)
		}
		cfg.Credentials, cfg.Region = awsCfg.Credentials, o.SPEKE.Region
	}
	src, err := keys.NewSPEKE(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("-speke-url: %w", err)
	}
	names := make([]string, len(systems))
	for i, id := range systems {
		names[i] = cenc.SystemName(id)
	}
	return src, fmt.Sprintf("SPEKE v2 key server %s (%s, %s, rotation every %d fragments)", o.SPEKE.URL, strings.Join(names, "+"), scheme, o.SPEKE.RotateEvery), nil
}
