//go:build !unix

package s3local

import "os"

// lockDir opens the lock file at path; without flock, it locks nothing.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
