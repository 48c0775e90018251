package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testCert is a self-signed certificate for 127.0.0.1 made by the test,
// with its PEM files in a temporary directory. Writing another one over
// the same files (writeOver) is a renewal.
type testCert struct {
	certFile, keyFile string
	cert              *x509.Certificate
	roots             *x509.CertPool // trusts this certificate and every one written over it since
}

// newTestCert makes a certificate whose subject's common name is cn and
// writes it to a new temporary directory.
func newTestCert(t *testing.T, cn string) *testCert {
	t.Helper()
	dir := t.TempDir()
	c := &testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), roots: x509.NewCertPool()}
	c.writeOver(t, cn, time.Now())
	return c
}

// writeOver makes a new certificate named cn and writes it over c's files
// (certificate first, then key), stamped mtime. It returns the new files'
// contents, for a test that writes them itself.
func (c *testCert) writeOver(t *testing.T, cn string, mtime time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, cert := makeCert(t, cn)
	writeFile(t, c.certFile, certPEM, mtime)
	writeFile(t, c.keyFile, keyPEM, mtime)
	c.cert = cert
	c.roots.AddCert(cert)
	return certPEM, keyPEM
}

// makeCert returns a self-signed ECDSA P-256 certificate for 127.0.0.1,
// valid for an hour either side of now, as PEM.
func makeCert(t *testing.T, cn string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), cert
}

// writeFile writes b to name and sets its modification time to mtime, so
// that a renewal is seen whatever the file system's time granularity.
func writeFile(t *testing.T, name string, b []byte, mtime time.Time) {
	t.Helper()
	require.NoError(t, os.WriteFile(name, b, 0o600))
	require.NoError(t, os.Chtimes(name, mtime, mtime))
}

// clientConfig is a client configuration that trusts c (and its
// renewals) and offers h2 before http/1.1, as browsers do, so that the
// server's choice shows.
func (c *testCert) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.roots, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}}
}
