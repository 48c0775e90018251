package strandtest

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// Frame is one message the plugin sent: its type and a copy of its bytes.
// Data is a string so that a Frame is immutable and comparable with ==
// (for binary messages too: use Bytes for a []byte).
type Frame struct {
	Type sdk.MessageType
	Data string
}

// Text returns a text Frame, for comparisons.
func Text(s string) Frame { return Frame{Type: sdk.Text, Data: s} }

// Binary returns a binary Frame holding a copy of b, for comparisons.
func Binary(b []byte) Frame { return Frame{Type: sdk.Binary, Data: string(b)} }

// Bytes returns a copy of the frame's data.
func (f Frame) Bytes() []byte { return []byte(f.Data) }

// String formats the frame as `text "hi"` or `binary 0a0b` (long binary
// data is cut).
func (f Frame) String() string {
	if f.Type == sdk.Text {
		if len(f.Data) > 200 {
			return fmt.Sprintf("text %q... (%d bytes)", f.Data[:200], len(f.Data))
		}
		return fmt.Sprintf("text %q", f.Data)
	}
	if len(f.Data) > 64 {
		return fmt.Sprintf("%s %s... (%d bytes)", f.Type, hex.EncodeToString([]byte(f.Data[:64])), len(f.Data))
	}
	if f.Data == "" {
		return f.Type.String() + " (empty)"
	}
	return fmt.Sprintf("%s %s", f.Type, hex.EncodeToString([]byte(f.Data)))
}

// poisonRun is how many consecutive poison bytes make the hint appear.
const poisonRun = 4

// poisonHint explains a frame that carries poisoned bytes, or returns "".
func poisonHint(f Frame) string {
	p := strings.Repeat(string([]byte{bufpool.PoisonByte}), min(poisonRun, len(f.Data)))
	if p == "" || !strings.Contains(f.Data, p) {
		return ""
	}
	return fmt.Sprintf(" (0x%X bytes: the plugin used message data after its handler returned and the buffer was released; copy msg.Data to keep it)", bufpool.PoisonByte)
}
