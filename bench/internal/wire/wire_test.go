package wire

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		text bool
	}{
		{"binary-min", BinaryHeaderLen, false},
		{"binary-64", 64, false},
		{"binary-4k", 4096, false},
		{"text-min", TextHeaderLen, true},
		{"text-64", 64, true},
		{"text-4k", 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCodec(tc.size, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, tc.size)
			for _, h := range []Header{
				{Conn: 0, Seq: 1, SentNanos: 0},
				{Conn: 18999, Seq: 1 << 40, SentNanos: 123456789012},
				{Conn: ^uint32(0), Seq: ^uint64(0), SentNanos: 1<<63 - 1},
			} {
				p := c.Encode(buf, h)
				if tc.text {
					for i, b := range p {
						if b < 0x21 || b > 0x7e {
							t.Fatalf("text payload byte %d is %#x, not printable ASCII", i, b)
						}
					}
				}
				got, err := c.Decode(p)
				if err != nil {
					t.Fatalf("Decode(Encode(%+v)): %v", h, err)
				}
				if got != h {
					t.Fatalf("Decode(Encode(%+v)) = %+v", h, got)
				}
			}
		})
	}
}

func TestCodecDetectsDamage(t *testing.T) {
	for _, text := range []bool{false, true} {
		c, err := NewCodec(256, text)
		if err != nil {
			t.Fatal(err)
		}
		good := func() []byte {
			return c.Encode(make([]byte, 256), Header{Conn: 3, Seq: 9, SentNanos: 77})
		}
		other := c.Encode(make([]byte, 256), Header{Conn: 4, Seq: 9, SentNanos: 77})
		for _, tc := range []struct {
			name   string
			damage func(p []byte) []byte
			want   error
		}{
			{"flipped-fill-byte", func(p []byte) []byte { p[200] ^= 1; return p }, ErrFill},
			{"last-byte", func(p []byte) []byte { p[255]++; return p }, ErrFill},
			{"truncated", func(p []byte) []byte { return p[:255] }, ErrSize},
			{"extended", func(p []byte) []byte { return append(p, 'x') }, ErrSize},
			{"header-of-another-message", func(p []byte) []byte {
				// The header says conn 4 while the fill belongs to conn 3.
				copy(p[:c.HeaderLen()], other[:c.HeaderLen()])
				return p
			}, ErrFill},
			{"zero-seq", func(p []byte) []byte {
				return c.Encode(p, Header{Conn: 3, Seq: 0})
			}, ErrHeader},
		} {
			t.Run(fmt.Sprintf("text=%v/%s", text, tc.name), func(t *testing.T) {
				_, err := c.Decode(tc.damage(good()))
				if !errors.Is(err, tc.want) {
					t.Fatalf("Decode error = %v, want %v", err, tc.want)
				}
			})
		}
	}
	t.Run("text-bad-hex", func(t *testing.T) {
		c, err := NewCodec(64, true)
		if err != nil {
			t.Fatal(err)
		}
		p := c.Encode(make([]byte, 64), Header{Conn: 1, Seq: 1})
		p[3] = 'G'
		if _, err := c.Decode(p); !errors.Is(err, ErrHeader) {
			t.Fatalf("Decode error = %v, want ErrHeader", err)
		}
	})
}

func TestNewCodecRejectsTinySize(t *testing.T) {
	if _, err := NewCodec(BinaryHeaderLen-1, false); !errors.Is(err, ErrSize) {
		t.Fatalf("binary: err = %v, want ErrSize", err)
	}
	if _, err := NewCodec(TextHeaderLen-1, true); !errors.Is(err, ErrSize) {
		t.Fatalf("text: err = %v, want ErrSize", err)
	}
}

func TestTracker(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []struct {
			sender uint32
			seq    uint64
		}
		want []error // one per observation
	}{
		{
			name: "in-order-interleaved-senders",
			seqs: []struct {
				sender uint32
				seq    uint64
			}{{0, 1}, {1, 1}, {0, 2}, {1, 2}, {1, 3}, {0, 3}},
			want: []error{nil, nil, nil, nil, nil, nil},
		},
		{
			name: "lost-message-counted-once",
			seqs: []struct {
				sender uint32
				seq    uint64
			}{{0, 1}, {0, 3}, {0, 4}},
			want: []error{nil, ErrGap, nil},
		},
		{
			name: "swapped-pair",
			seqs: []struct {
				sender uint32
				seq    uint64
			}{{0, 1}, {0, 3}, {0, 2}, {0, 4}},
			want: []error{nil, ErrGap, ErrBackward, nil},
		},
		{
			name: "duplicate",
			seqs: []struct {
				sender uint32
				seq    uint64
			}{{0, 1}, {0, 2}, {0, 2}},
			want: []error{nil, nil, ErrBackward},
		},
		{
			name: "first-message-missing",
			seqs: []struct {
				sender uint32
				seq    uint64
			}{{1, 2}},
			want: []error{ErrGap},
		},
		{
			name: "unknown-sender",
			seqs: []struct {
				sender uint32
				seq    uint64
			}{{2, 1}},
			want: []error{ErrSender},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(2)
			for i, o := range tc.seqs {
				err := tr.Observe(o.sender, o.seq)
				if tc.want[i] == nil && err != nil {
					t.Fatalf("observation %d (%+v): unexpected error %v", i, o, err)
				}
				if tc.want[i] != nil && !errors.Is(err, tc.want[i]) {
					t.Fatalf("observation %d (%+v): error %v, want %v", i, o, err, tc.want[i])
				}
			}
		})
	}
}

func BenchmarkDecode4K(b *testing.B) {
	c, err := NewCodec(4096, false)
	if err != nil {
		b.Fatal(err)
	}
	p := c.Encode(make([]byte, 4096), Header{Conn: 1, Seq: 1})
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		if _, err := c.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleCodec() {
	c, _ := NewCodec(64, false)
	p := c.Encode(make([]byte, 64), Header{Conn: 7, Seq: 1, SentNanos: 1000})
	h, err := c.Decode(p)
	fmt.Println(h.Conn, h.Seq, h.SentNanos, err)
	p[40] ^= 0xff
	_, err = c.Decode(p)
	fmt.Println(errors.Is(err, ErrFill))
	// Output:
	// 7 1 1000 <nil>
	// true
}

func TestJSONCodec(t *testing.T) {
	for _, size := range []int{JSONMinSize, 256, 4096} {
		c, err := NewFlavourCodec(size, JSON)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Text() || c.Flavour() != JSON {
			t.Fatalf("JSON codec: Text %v, Flavour %v", c.Text(), c.Flavour())
		}
		buf := make([]byte, size)
		for _, h := range []Header{
			{Conn: 0, Seq: 1, SentNanos: 0},
			{Conn: 18999, Seq: 1 << 40, SentNanos: 123456789012},
			{Conn: ^uint32(0), Seq: ^uint64(0), SentNanos: 1<<63 - 1},
		} {
			p := c.Encode(buf, h)
			if !json.Valid(p) {
				t.Fatalf("size %d: not valid JSON: %.120q", size, p)
			}
			var m map[string]string
			if err := json.Unmarshal(p, &m); err != nil || len(m) != 5 || m["text"] == "" && size > JSONMinSize {
				t.Fatalf("size %d: fields %v (%v)", size, m, err)
			}
			got, err := c.Decode(p)
			if err != nil || got != h {
				t.Fatalf("Decode(Encode(%+v)) = %+v, %v", h, got, err)
			}
		}
	}
	if _, err := NewFlavourCodec(JSONMinSize-1, JSON); !errors.Is(err, ErrSize) {
		t.Fatalf("size below the JSON header: %v", err)
	}
}

func TestJSONCodecDetectsDamage(t *testing.T) {
	c, err := NewFlavourCodec(1024, JSON)
	if err != nil {
		t.Fatal(err)
	}
	good := func() []byte { return c.Encode(make([]byte, 1024), Header{Conn: 3, Seq: 9, SentNanos: 77}) }
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		want   error
	}{
		{"literal", func(p []byte) []byte { p[3] = 'x'; return p }, ErrHeader},
		{"user differs from conn", func(p []byte) []byte { p[88] = '9'; return p }, ErrHeader},
		{"closing brace", func(p []byte) []byte { p[len(p)-1] = ' '; return p }, ErrHeader},
		{"text", func(p []byte) []byte { p[500] ^= 1; return p }, ErrFill},
		{"other seq's text", func(p []byte) []byte {
			q := c.Encode(make([]byte, 1024), Header{Conn: 3, Seq: 10})
			copy(p[JSONHeaderLen:], q[JSONHeaderLen:])
			return p
		}, ErrFill},
		{"short", func(p []byte) []byte { return p[:1000] }, ErrSize},
	} {
		if _, err := c.Decode(tc.damage(good())); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestJSONCompressible: deflate shrinks a JSON payload the way it does
// prose (a few times), not to almost nothing (a payload that repeats itself
// would flatter compression).
func TestJSONCompressible(t *testing.T) {
	c, err := NewFlavourCodec(4096, JSON)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Encode(make([]byte, 4096), Header{Conn: 42, Seq: 7, SentNanos: 1})
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Close()
	ratio := float64(len(p)) / float64(b.Len())
	t.Logf("4 KiB JSON payload: %d bytes deflated (ratio %.2f)", b.Len(), ratio)
	if ratio < 1.8 || ratio > 6 {
		t.Fatalf("compression ratio %.2f: want prose-like, 1.8..6", ratio)
	}
}
