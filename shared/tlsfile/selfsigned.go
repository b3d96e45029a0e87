package tlsfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Self-signed certificates last selfSignedFor, and are made again when
// less than renewBefore is left.
const (
	selfSignedFor = 397 * 24 * time.Hour // the most a client platform accepts (Apple's rule)
	renewBefore   = 30 * 24 * time.Hour
)

// DefaultHosts are the names and addresses a self-signed certificate
// always holds.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// SelfSigned returns the files (cert.pem, key.pem) of a self-signed
// certificate under dir, an ECDSA P-256 key, for DefaultHosts and hosts
// (names or IP addresses). The certificate found there is kept (and so
// its fingerprint, across restarts) unless it does not load, lacks one of
// the hosts, or expires within 30 days; then a new one is made, and made
// says so.
func SelfSigned(dir string, hosts []string, now time.Time) (certFile, keyFile string, made bool, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	names, ips := split(append(slices.Clone(DefaultHosts), hosts...))
	ok, err := usable(certFile, keyFile, names, ips, now)
	if err != nil || ok {
		return certFile, keyFile, false, err
	}
	certPEM, keyPEM, err := newSelfSigned(names, ips, now)
	if err != nil {
		return "", "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("self-signed certificate: %w", err)
	}
	// The key first: a certificate never sits beside another's key for
	// long, and a crash in between makes a new pair next time.
	for _, f := range []struct {
		name string
		data []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}} {
		tmp := f.name + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return "", "", false, fmt.Errorf("self-signed certificate: %w", err)
		}
		if err := os.Rename(tmp, f.name); err != nil {
			return "", "", false, fmt.Errorf("self-signed certificate: %w", err)
		}
	}
	return certFile, keyFile, true, nil
}

// split sorts hosts into names and IP addresses, without duplicates.
func split(hosts []string) (names []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names, ips
}

// usable tells whether the certificate and key in the files load, hold
// every name and address and last past now plus renewBefore. Files that
// are missing are not usable; files that cannot be read are an error.
func usable(certFile, keyFile string, names []string, ips []net.IP, now time.Time) (bool, error) {
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("self-signed certificate: %w", err)
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false, nil
	}
	leaf := c.Leaf
	if now.Add(renewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return false, nil
	}
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			return false, nil
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false, nil
		}
	}
	return true, nil
}

// newSelfSigned makes a self-signed server certificate for names and
// ips, and its ECDSA P-256 key, in PEM.
func newSelfSigned(names []string, ips []net.IP, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "smoothcast local ingest", Organization: []string{"smoothcast"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(selfSignedFor),
		DNSNames: names, IPAddresses: ips,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, // so that an OS or ffmpeg's -ca_file can trust it as its own root
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}
