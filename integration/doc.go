// Package integration holds the tests of the relay and the manifest
// function together, in one process, over the embedded S3: what one
// stores, the other reads. They drive no external program (e2e does);
// each component's own tests stay in its package.
package integration
