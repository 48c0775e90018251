package frame_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk/frame"
)

// countingWriter records each Write call.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func orderedSamples() []frame.Frame {
	s := sampleFrames()
	return []frame.Frame{s["handshake"], s["request filter"], s["text message"], s["reply with edits"], s["close"], s["empty"]}
}

func TestStreamRoundTrip(t *testing.T) {
	frames := orderedSamples()
	var w countingWriter
	fw, err := frame.NewWriter(&w, frame.WriterConfig{})
	require.NoError(t, err)
	for i := range frames {
		require.NoError(t, fw.WriteFrame(&frames[i]))
	}
	require.Zero(t, w.writes, "frames below FlushSize wait for Flush")
	require.Positive(t, fw.Buffered())
	require.NoError(t, fw.Flush())
	require.Equal(t, 1, w.writes, "one write carries the batch")
	require.Zero(t, fw.Buffered())
	require.NoError(t, fw.Flush(), "empty flush")
	require.Equal(t, 1, w.writes)

	readers := map[string]func([]byte) io.Reader{
		"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"data+EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			// A tiny buffer forces compaction and growth.
			r, err := frame.NewReader(mk(w.Bytes()), frame.ReaderConfig{BufferSize: 16})
			require.NoError(t, err)
			for i := range frames {
				buf, err := r.Next()
				require.NoError(t, err, "frame %d", i)
				v, err := frame.Decode(buf)
				require.NoError(t, err)
				require.Equal(t, normalize(frames[i]), copyOut(t, &v))
			}
			_, err = r.Next()
			require.ErrorIs(t, err, io.EOF)
			_, err = r.Next()
			require.ErrorIs(t, err, io.EOF, "errors are sticky")
		})
	}
}

func TestWriterFlushSize(t *testing.T) {
	var w countingWriter
	fw, err := frame.NewWriter(&w, frame.WriterConfig{FlushSize: 100})
	require.NoError(t, err)
	f := frame.Frame{Payload: make([]byte, 40)}
	require.NoError(t, fw.WriteFrame(&f))
	require.Zero(t, w.writes)
	require.NoError(t, fw.WriteFrame(&f)) // two frames pass 100 bytes
	require.Equal(t, 1, w.writes)
	require.Zero(t, fw.Buffered())

	// Frames written already encoded are the same on the wire.
	var w2 bytes.Buffer
	fw2, err := frame.NewWriter(&w2, frame.WriterConfig{})
	require.NoError(t, err)
	enc := frame.NewEncoder()
	require.NoError(t, fw2.WriteEncoded(enc.Encode(&f)))
	require.NoError(t, fw2.WriteEncoded(enc.Encode(&f)))
	require.NoError(t, fw2.Flush())
	require.Equal(t, w.Bytes(), w2.Bytes())
}

func TestSizeCap(t *testing.T) {
	enc := frame.NewEncoder()
	small := frame.Frame{Payload: make([]byte, 10)}
	big := frame.Frame{Payload: make([]byte, 1000)}
	bigLen := len(enc.Encode(&big))

	t.Run("writer refuses", func(t *testing.T) {
		var w countingWriter
		fw, err := frame.NewWriter(&w, frame.WriterConfig{MaxFrameSize: bigLen - 1})
		require.NoError(t, err)
		require.NoError(t, fw.WriteFrame(&small))
		before := fw.Buffered()
		require.ErrorIs(t, fw.WriteFrame(&big), frame.ErrTooLarge)
		require.Equal(t, before, fw.Buffered(), "nothing of the refused frame is batched")
		require.NoError(t, fw.WriteFrame(&small), "the writer stays usable")
	})
	t.Run("reader refuses", func(t *testing.T) {
		stream := enc.AppendFrame(nil, &small)
		stream = enc.AppendFrame(stream, &big)
		r, err := frame.NewReader(bytes.NewReader(stream), frame.ReaderConfig{MaxFrameSize: bigLen - 1})
		require.NoError(t, err)
		_, err = r.Next()
		require.NoError(t, err)
		_, err = r.Next()
		require.ErrorIs(t, err, frame.ErrTooLarge)
		require.ErrorContains(t, err, "limit")
		_, err = r.Next()
		require.ErrorIs(t, err, frame.ErrTooLarge, "errors are sticky")
	})
	t.Run("reader accepts the limit", func(t *testing.T) {
		r, err := frame.NewReader(bytes.NewReader(enc.AppendFrame(nil, &big)), frame.ReaderConfig{MaxFrameSize: bigLen, BufferSize: 8})
		require.NoError(t, err)
		buf, err := r.Next()
		require.NoError(t, err)
		require.Len(t, buf, bigLen)
	})
	t.Run("default cap is 16 MiB", func(t *testing.T) {
		prefix := []byte{0x01, 0x00, 0x00, 0x01} // 16 MiB + 1
		r, err := frame.NewReader(bytes.NewReader(prefix), frame.ReaderConfig{})
		require.NoError(t, err)
		_, err = r.Next()
		require.ErrorIs(t, err, frame.ErrTooLarge)
		r, err = frame.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), frame.ReaderConfig{})
		require.NoError(t, err)
		_, err = r.Next()
		require.ErrorIs(t, err, frame.ErrTooLarge)
	})
}

func TestReaderTruncated(t *testing.T) {
	enc := frame.NewEncoder()
	f := sampleFrames()["text message"]
	stream := enc.AppendFrame(nil, &f)
	for n := 1; n < len(stream); n++ {
		r, err := frame.NewReader(bytes.NewReader(stream[:n]), frame.ReaderConfig{})
		require.NoError(t, err)
		_, err = r.Next()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d", n)
	}
	r, err := frame.NewReader(bytes.NewReader(nil), frame.ReaderConfig{})
	require.NoError(t, err)
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	r, err := frame.NewReader(iotest.ErrReader(boom), frame.ReaderConfig{})
	require.NoError(t, err)
	_, err = r.Next()
	require.ErrorIs(t, err, boom)

	r, err = frame.NewReader(zeroReader{}, frame.ReaderConfig{})
	require.NoError(t, err)
	_, err = r.Next()
	require.ErrorIs(t, err, io.ErrNoProgress)
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

type failWriter struct{ n int }

func (w failWriter) Write(p []byte) (int, error) {
	if w.n > len(p) {
		return len(p), nil
	}
	return w.n, nil
}

func TestWriterErrors(t *testing.T) {
	f := frame.Frame{SessionID: 1}
	fw, err := frame.NewWriter(failWriter{n: 3}, frame.WriterConfig{})
	require.NoError(t, err)
	require.NoError(t, fw.WriteFrame(&f))
	require.ErrorIs(t, fw.Flush(), io.ErrShortWrite)
	require.ErrorIs(t, fw.WriteFrame(&f), io.ErrShortWrite, "errors are sticky")
	require.ErrorIs(t, fw.Flush(), io.ErrShortWrite)

	boom := errors.New("boom")
	fw, err = frame.NewWriter(errWriter{boom}, frame.WriterConfig{})
	require.NoError(t, err)
	require.NoError(t, fw.WriteFrame(&f))
	require.ErrorIs(t, fw.Flush(), boom)
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestStreamConfig(t *testing.T) {
	for name, cfg := range map[string]frame.ReaderConfig{
		"negative max":    {MaxFrameSize: -1},
		"max over 2 GiB":  {MaxFrameSize: 1 << 31},
		"negative buffer": {BufferSize: -1},
	} {
		t.Run("reader "+name, func(t *testing.T) {
			_, err := frame.NewReader(bytes.NewReader(nil), cfg)
			require.Error(t, err)
		})
	}
	for name, cfg := range map[string]frame.WriterConfig{
		"negative max":   {MaxFrameSize: -1},
		"max over 2 GiB": {MaxFrameSize: 1 << 31},
		"negative flush": {FlushSize: -1},
	} {
		t.Run("writer "+name, func(t *testing.T) {
			_, err := frame.NewWriter(io.Discard, cfg)
			require.Error(t, err)
		})
	}
}
