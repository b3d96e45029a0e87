package e2e

import (
	"context"
	"os/exec"
	"testing"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
)

// ffmpeg authenticates with the URL the encoder guide gives (HTTP Basic,
// sent at once with -auth_type basic: a chunked POST cannot answer a
// challenge). Without it, the push is refused before its body is read.
// ffmpeg itself does not report the refusal (it never reads the answer to
// its POST): the channel stays empty and the relay logs it.
func TestFFmpegAuthenticatesWithBasicCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const secret = "e2e-secret-0123456789abcdef"
	st := startStackWith(t, "", func(o *stack.Options) {
		var err error
		if o.Relay.Secrets, err = relay.ParseSecrets(secret); err != nil {
			t.Fatal(err)
		}
	})
	push := func(url string, auth bool) {
		args := []string{"-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-t", "4", "-movflags", "+isml+frag_keyframe"}
		if auth {
			args = append(args, "-auth_type", "basic")
		}
		out, err := exec.CommandContext(context.Background(), ffmpeg, append(args, "-f", "ismv", url)...).CombinedOutput()
		if err != nil {
			t.Logf("ffmpeg: %v %s", err, out)
		}
	}
	host := st.IngestURL[len("http://"):]
	push("http://encoder:"+secret+"@"+host+"/live/withsecret.isml/Streams(s)", true)
	push(st.IngestURL+"/live/nosecret.isml/Streams(s)", false)
	st.Settle(context.Background())
	if resp, body := get(t, st.EdgeURL+"/live/withsecret.isml/Manifest"); resp.StatusCode != 200 {
		t.Errorf("authenticated push: Manifest %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, st.EdgeURL+"/live/nosecret.isml/Manifest"); resp.StatusCode != 404 {
		t.Errorf("unauthenticated push: Manifest %d, want 404 (nothing stored)", resp.StatusCode)
	}
}
