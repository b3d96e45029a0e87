package rtmp

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// errTooManyFiles is accept's error when the process is out of file
// descriptors: the listener waits and goes on.
var errTooManyFiles = syscall.EMFILE

// keyPair is a certificate and its key read from PEM files, read again
// when either file's modification time changes (checked at most once a
// second). A renewed certificate that does not load keeps the one before
// it in use, and the log says so (once per failure).
type keyPair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // the files' modification times when read
	checked time.Time
	failed  string // the last failure logged
}

// get returns the certificate, reading the files again if they changed.
func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checked) < time.Second {
		return k.cert, nil
	}
	k.checked = time.Now()
	var stamp [2]time.Time
	for i, f := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return k.keep(fmt.Errorf("rtmps certificate: %w", err))
		}
		stamp[i] = fi.ModTime()
	}
	if k.cert != nil && stamp == k.stamp {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return k.keep(fmt.Errorf("rtmps certificate %s, key %s: %w", k.certFile, k.keyFile, err))
	}
	k.cert, k.stamp, k.failed = &c, stamp, ""
	return k.cert, nil
}

// keep is get's answer when the files cannot be read: the certificate
// read before, if any.
func (k *keyPair) keep(err error) (*tls.Certificate, error) {
	if k.cert == nil {
		return nil, err
	}
	if err.Error() != k.failed {
		k.failed = err.Error()
		k.log.Error("rtmps certificate not read again: the one read before stays in use", "err", err)
	}
	return k.cert, nil
}
