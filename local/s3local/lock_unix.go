//go:build unix

package s3local

import (
	"os"
	"syscall"
)

// lockDir opens the lock file at path and takes an exclusive lock on it
// (flock: the system drops it when the process ends, however it ends);
// closing the file releases it.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}
