package sdk_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/strandws/strand/sdk"
)

// surface is every exported method of sdk's types, by type, as
// "Name(parameters) results". sdk's contexts, Conn, Entry and Plugin are
// defined on internal/core's types (type Conn core.Conn): a method that
// core promotes from an embedded field carries over to them unseen by go
// doc, and would hand a plugin the host's machinery. A method added on
// purpose is added here too.
var surface = map[any][]string{
	(*sdk.RequestContext)(nil): {
		"AddHeader(string, string)",
		"Context() context.Context",
		"Defer()",
		"End()",
		"Next()",
		"ReadBody() ([]uint8, error)",
		"Reject(int, string)",
		"RemoveHeader(string)",
		"Request() *sdk.Request",
		"Set(string, interface {})",
		"SetBody([]uint8)",
		"SetHeader(string, string)",
		"SetJSON(interface {}) error",
		"SetStatus(int)",
		"StreamEnd() error",
		"StreamHeader(int) error",
		"StreamWrite([]uint8) error",
		"Upgrade(*sdk.WebSocketHandlers)",
		"Value(string) interface {}",
	},
	(*sdk.ResponseContext)(nil): {
		"AddHeader(string, string)",
		"Context() context.Context",
		"Defer()",
		"Next()",
		"RemoveHeader(string)",
		"Request() *sdk.Request",
		"ResponseHeader() http.Header",
		"ResponseStatus() int",
		"SetHeader(string, string)",
		"SetStatus(int)",
		"Value(string) interface {}",
	},
	(*sdk.BodyContext)(nil): {
		"AddHeader(string, string)",
		"Body() []uint8",
		"Context() context.Context",
		"Defer()",
		"Next()",
		"RemoveHeader(string)",
		"Request() *sdk.Request",
		"SetBody([]uint8)",
		"SetHeader(string, string)",
		"SetJSON(interface {}) error",
		"SetStatus(int)",
		"Value(string) interface {}",
	},
	(*sdk.Conn)(nil): {
		"Broadcast(string, sdk.MessageType, []uint8, ...sdk.BroadcastOptions) error",
		"BroadcastBuffer(string, sdk.MessageType, *bufpool.Buffer, ...sdk.BroadcastOptions) error",
		"Buffers() *bufpool.Pool",
		"Close(sdk.CloseCode, string) error",
		"Context() context.Context",
		"ID() uint64",
		"Join(string) error",
		"Leave(string) error",
		"Request() *sdk.Request",
		"Send(sdk.MessageType, []uint8) error",
		"SendBinary([]uint8) error",
		"SendBuffer(sdk.MessageType, *bufpool.Buffer) error",
		"SendText(string) error",
		"SendUncompressed(sdk.MessageType, []uint8) error",
		"Subprotocol() string",
		"Value(string) interface {}",
	},
	(*sdk.Entry)(nil): {
		"Logging(sdk.LoggingFunc) *sdk.Entry",
		"Name() string",
		"Plugin() *sdk.Plugin",
		"RequestFilter(sdk.RequestFilterFunc) *sdk.Entry",
		"ResponseBodyFilter(sdk.BodyFilterFunc) *sdk.Entry",
		"ResponseFilter(sdk.ResponseFilterFunc) *sdk.Entry",
		"String() string",
		"WebSocket(sdk.WebSocketHandlers) *sdk.Entry",
	},
	(*sdk.Plugin)(nil): {
		"Configure([]uint8) error",
		"Entries() []*sdk.Entry",
		"Entry(string) *sdk.Entry",
		"Lookup(string) (*sdk.Entry, bool)",
		"Name() string",
		"OnConfig(func(sdk.Settings) error) *sdk.Plugin",
	},
	(*sdk.Settings)(nil): {
		"Decode(interface {}) error",
		"Raw() []uint8",
	},
	(*sdk.Request)(nil): {
		"Param(string) string",
		"Query() url.Values",
	},
	(*sdk.CloseError)(nil):         {"Error() string"},
	(*sdk.CloseCode)(nil):          {"ValidOnWire() bool"},
	(*sdk.MessageType)(nil):        {"String() string"},
	(*sdk.Message)(nil):            nil,
	(*sdk.LogEntry)(nil):           nil,
	(*sdk.BroadcastOptions)(nil):   nil,
	(*sdk.WebSocketHandlers)(nil):  nil,
	(*sdk.RequestFilterFunc)(nil):  nil,
	(*sdk.ResponseFilterFunc)(nil): nil,
	(*sdk.BodyFilterFunc)(nil):     nil,
	(*sdk.LoggingFunc)(nil):        nil,
}

// funcs are sdk's package-level functions, whose signatures the
// reachability check walks too.
var funcs = []any{sdk.NewPlugin, sdk.NewSettings, sdk.CloseStatus, sdk.ValidRoomName}

// signature formats method m of a type as "Name(parameters) results",
// without the receiver.
func signature(m reflect.Method) string {
	ft := m.Type
	var in, out []string
	for i := 1; i < ft.NumIn(); i++ { // 0 is the receiver
		s := ft.In(i).String()
		if ft.IsVariadic() && i == ft.NumIn()-1 {
			s = "..." + strings.TrimPrefix(s, "[]")
		}
		in = append(in, s)
	}
	for i := range ft.NumOut() {
		out = append(out, ft.Out(i).String())
	}
	s := m.Name + "(" + strings.Join(in, ", ") + ")"
	switch len(out) {
	case 0:
	case 1:
		s += " " + out[0]
	default:
		s += " (" + strings.Join(out, ", ") + ")"
	}
	return s
}

func methodSet(t reflect.Type) []string {
	var ms []string
	for i := range t.NumMethod() {
		ms = append(ms, signature(t.Method(i)))
	}
	slices.Sort(ms)
	return ms
}

// TestSurface fails when one of sdk's types gains or loses an exported
// method, in particular one promoted from internal/core.
func TestSurface(t *testing.T) {
	for v, want := range surface {
		typ := reflect.TypeOf(v)
		t.Run(typ.Elem().Name(), func(t *testing.T) {
			w := slices.Clone(want)
			slices.Sort(w)
			assert.Equal(t, w, methodSet(typ), "the exported methods of %s", typ)
		})
	}
}

// TestSurfaceReachesNoInternalType walks every type a plugin can reach
// from sdk (through exported fields, method and function signatures) and
// fails on one declared in an internal package: sdk hands out its own
// types, never the host's.
func TestSurfaceReachesNoInternalType(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, from string) []string
	walk = func(typ reflect.Type, from string) (bad []string) {
		if seen[typ] {
			return nil
		}
		seen[typ] = true
		if p := typ.PkgPath(); strings.Contains(p, "/internal/") || strings.HasSuffix(p, "/internal") {
			return []string{from + ": " + typ.String() + " (" + p + ")"}
		}
		if p := typ.PkgPath(); p != "" && !strings.HasPrefix(p, "github.com/strandws/strand") {
			return nil // the standard library's and other modules' types
		}
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			bad = append(bad, walk(m.Type, typ.String()+"."+m.Name)...)
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Chan:
			bad = append(bad, walk(typ.Elem(), from)...)
		case reflect.Map:
			bad = append(bad, walk(typ.Key(), from)...)
			bad = append(bad, walk(typ.Elem(), from)...)
		case reflect.Func:
			for i := range typ.NumIn() {
				bad = append(bad, walk(typ.In(i), from)...)
			}
			for i := range typ.NumOut() {
				bad = append(bad, walk(typ.Out(i), from)...)
			}
		case reflect.Struct:
			for i := range typ.NumField() {
				if f := typ.Field(i); f.IsExported() {
					bad = append(bad, walk(f.Type, typ.String()+"."+f.Name)...)
				}
			}
		}
		return bad
	}
	var bad []string
	for v := range surface {
		bad = append(bad, walk(reflect.TypeOf(v), "sdk")...)
	}
	for _, f := range funcs {
		bad = append(bad, walk(reflect.TypeOf(f), "sdk")...)
	}
	assert.Empty(t, bad, "sdk exposes internal types")
}

// TestDocumentedLimits holds the limits sdk's doc states as numbers (the
// constants are core's, which go doc does not show).
func TestDocumentedLimits(t *testing.T) {
	assert.Equal(t, 256, sdk.MaxRoomNameBytes)
	assert.Equal(t, 64, sdk.DefaultMaxRoomsPerConn)
}
