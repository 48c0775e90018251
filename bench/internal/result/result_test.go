package result

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strandws/strand/bench/internal/stats"
)

func TestWriteRead(t *testing.T) {
	want := &Result{
		Server: "x", Cell: "c", Mode: "echo", Conns: 3, Connected: 3, Size: 64, Depth: 2,
		Sent: 10, Delivered: 10, MsgsPerSec: 5, Latency: stats.Summary{Count: 10, P99: 12.5},
		Errors: map[string]uint64{"order": 1}, ErrorTotal: 1, ErrorSamples: []string{"order: x"},
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil {
		t.Fatal("Read accepted malformed JSON")
	}
}

func ExampleRead() {
	dir, _ := os.MkdirTemp("", "result")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "r1.json")
	_ = Write(path, &Result{Server: "gws", Mode: "echo", MsgsPerSec: 123456})
	r, err := Read(path)
	fmt.Println(r.Server, r.Mode, r.MsgsPerSec, err)
	// Output: gws echo 123456 <nil>
}
