package main

import (
	"crypto/tls"
	"io"
	"path/filepath"
	"testing"
)

func TestWritesALoadablePair(t *testing.T) {
	dir := t.TempDir()
	if code := run([]string{"-dir", dir}, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if code := run(nil, io.Discard); code != 2 {
		t.Fatalf("without -dir: exit %d, want 2", code)
	}
}
