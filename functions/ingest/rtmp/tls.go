package rtmp

import (
	"syscall"
)

// errTooManyFiles is accept's error when the process is out of file
// descriptors: the listener waits and goes on.
var errTooManyFiles = syscall.EMFILE
