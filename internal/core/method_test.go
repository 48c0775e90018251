package core

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk/frame"
)

// TestMethodIDsAreTheSchemas: the host call numbers are the wire schema's,
// so a plugin in another process and this runtime agree.
func TestMethodIDsAreTheSchemas(t *testing.T) {
	for _, tc := range []struct {
		ours   MethodID
		schema frame.Method
	}{
		{MethodNext, frame.MethodNext},
		{MethodEnd, frame.MethodEnd},
		{MethodResponseStreamData, frame.MethodResponseStreamData},
		{MethodResponseStreamEnd, frame.MethodResponseStreamEnd},
		{MethodResponseStreamHead, frame.MethodResponseStreamHeader},
		{MethodReadRequestBody, frame.MethodReadRequestFullBody},
	} {
		require.Equal(t, uint16(tc.schema), uint16(tc.ours), "method %v", tc.schema)
	}
}
