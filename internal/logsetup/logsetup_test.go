package logsetup

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "json", "warn")
	require.NoError(t, err)
	l.Info("dropped")
	l.Warn("kept", "conn", 7)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &rec), b.String())
	require.Equal(t, "kept", rec["msg"])
	require.EqualValues(t, 7, rec["conn"])

	b.Reset()
	l, err = New(&b, "text", "debug")
	require.NoError(t, err)
	l.Debug("hello", "route", "/echo")
	require.Contains(t, b.String(), `level=DEBUG msg=hello route=/echo`)

	_, err = New(&b, "xml", "info")
	require.EqualError(t, err, `unknown -log-format "xml": want text or json`)
	_, err = New(&b, "text", "loud")
	require.EqualError(t, err, `unknown -log-level "loud": want debug, info, warn or error`)
}
