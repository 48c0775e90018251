package echoplugin

import (
	"testing"
	"time"
)

// FuzzParseSleep: any ?sleep= value either parses to a duration within
// [0, MaxSleep] or is refused with an error; it never panics.
func FuzzParseSleep(f *testing.F) {
	for _, s := range []string{"200ms", "0", "0s", "-1s", "10s", "10.000000001s", "1h", "", "nonsense", "9223372036854775807ns", "1e3ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := parseSleep(v)
		if err != nil {
			if d != 0 {
				t.Fatalf("parseSleep(%q) = %v with error %v", v, d, err)
			}
			return
		}
		if d < 0 || d > MaxSleep {
			t.Fatalf("parseSleep(%q) = %v, outside [0, %v]", v, d, MaxSleep)
		}
		if want, perr := time.ParseDuration(v); perr != nil || want != d {
			t.Fatalf("parseSleep(%q) = %v, time.ParseDuration says %v, %v", v, d, want, perr)
		}
	})
}
