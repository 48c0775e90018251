package frame_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk/frame"
)

// FuzzDecodeFrame feeds arbitrary bytes to Decode: it must return an
// ErrMalformed error or a View whose every accessor works, and what the
// View reads must survive a re-encoding. The committed seed corpus is in
// testdata/fuzz/FuzzDecodeFrame.
func FuzzDecodeFrame(f *testing.F) {
	enc := frame.NewEncoder()
	for _, fr := range sampleFrames() {
		f.Add(bytes.Clone(enc.Encode(&fr)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := frame.Decode(data)
		if err != nil {
			if !errors.Is(err, frame.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		got := copyOut(t, &v)
		v2, err := frame.Decode(frame.NewEncoder().Encode(&got))
		require.NoError(t, err)
		require.Equal(t, got, copyOut(t, &v2))
	})
}

// FuzzReader feeds arbitrary bytes to the stream Reader, with a small cap
// and buffer so that growth, compaction and the cap are all reached.
func FuzzReader(f *testing.F) {
	enc := frame.NewEncoder()
	var stream []byte
	for _, fr := range orderedSamples() {
		stream = enc.AppendFrame(stream, &fr)
	}
	f.Add(stream)
	f.Add(stream[:len(stream)-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1})
	const limit = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := frame.NewReader(bytes.NewReader(data), frame.ReaderConfig{MaxFrameSize: limit, BufferSize: 8})
		require.NoError(t, err)
		read := 0
		for {
			buf, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, frame.ErrTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				if errors.Is(err, io.EOF) && read != len(data) {
					t.Fatalf("EOF after %d of %d bytes", read, len(data))
				}
				return
			}
			if len(buf) > limit {
				t.Fatalf("frame of %d bytes over the limit", len(buf))
			}
			read += 4 + len(buf)
			if read > len(data) {
				t.Fatalf("read %d bytes from %d", read, len(data))
			}
			if v, err := frame.Decode(buf); err == nil {
				copyOut(t, &v)
			}
		}
	})
}
