// Command certgen writes a self-signed certificate and its key, for
// loopback TLS benchmarks: cert.pem and key.pem in -dir, valid for
// 127.0.0.1 and localhost for -valid (ECDSA P-256). It is the root a load
// generator trusts (loadgen -ca DIR/cert.pem); never use it elsewhere.
//
//	go run ./cmd/certgen -dir /tmp/certs
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory to write cert.pem and key.pem into (required)")
	valid := fs.Duration("valid", 24*time.Hour, "validity from now")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *valid <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "certgen: -dir is required, -valid must be positive, no arguments")
		return 2
	}
	if err := write(*dir, *valid); err != nil {
		fmt.Fprintln(stderr, "certgen:", err)
		return 1
	}
	return 0
}

// write makes the certificate and writes both files.
func write(dir string, valid time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "strand bench loopback"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(valid),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644),
		os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600),
	)
}
