package wsframework

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/clock"
)

// writeTestPair writes a new self-signed certificate named cn and its key
// to certFile and keyFile, both stamped mtime.
func writeTestPair(t *testing.T, certFile, keyFile, cn string, mtime time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	writeStamped(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), mtime)
	writeStamped(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), mtime)
}

func writeStamped(t *testing.T, name string, b []byte, mtime time.Time) {
	t.Helper()
	require.NoError(t, os.WriteFile(name, b, 0o600))
	require.NoError(t, os.Chtimes(name, mtime, mtime))
}

// countingHandler counts the records at each level.
type countingHandler struct{ warn, info atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Level {
	case slog.LevelWarn:
		h.warn.Add(1)
	case slog.LevelInfo:
		h.info.Add(1)
	}
	return nil
}

// TestCertReloaderLooksAtMostEveryInterval: a renewal is picked up by the
// first handshake after the interval, not before; a pair that does not
// load keeps the certificate in use and is warned about once, not at every
// look; with a negative interval the files are read once.
func TestCertReloaderLooksAtMostEveryInterval(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	base := time.Now()
	writeTestPair(t, certFile, keyFile, "one", base)
	clk := clock.NewManual(0)
	logs := new(countingHandler)
	r, err := newCertReloader(certFile, keyFile, 5*time.Second, clk, slog.New(logs))
	require.NoError(t, err)
	cn := func() string {
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		return c.Leaf.Subject.CommonName
	}
	require.Equal(t, "one", cn())

	writeTestPair(t, certFile, keyFile, "two", base.Add(time.Minute))
	clk.Advance(4 * time.Second)
	require.Equal(t, "one", cn(), "looked before the interval passed")
	clk.Advance(time.Second)
	require.Equal(t, "two", cn())
	require.EqualValues(t, 1, logs.info.Load())

	writeStamped(t, certFile, []byte("not a certificate"), base.Add(2*time.Minute))
	clk.Advance(5 * time.Second)
	require.Equal(t, "two", cn(), "a pair that does not load replaced the certificate")
	require.EqualValues(t, 1, logs.warn.Load())
	clk.Advance(5 * time.Second)
	require.Equal(t, "two", cn())
	require.EqualValues(t, 1, logs.warn.Load(), "the same broken files warned about again")

	// A file gone is warned about once too.
	require.NoError(t, os.Rename(keyFile, keyFile+".away"))
	for range 3 {
		clk.Advance(5 * time.Second)
		require.Equal(t, "two", cn())
	}
	require.EqualValues(t, 2, logs.warn.Load(), "a missing file warned about at every look")
	require.NoError(t, os.Rename(keyFile+".away", keyFile))

	writeTestPair(t, certFile, keyFile, "three", base.Add(3*time.Minute))
	clk.Advance(5 * time.Second)
	require.Equal(t, "three", cn())

	never, err := newCertReloader(certFile, keyFile, -1, clk, slog.New(logs))
	require.NoError(t, err)
	writeTestPair(t, certFile, keyFile, "four", base.Add(4*time.Minute))
	clk.Advance(time.Hour)
	c, err := never.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	require.Equal(t, "three", c.Leaf.Subject.CommonName, "a reloader told never to look looked")
}
