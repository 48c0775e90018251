package frame

// The generated package wire holds the schema's enums and the FlatBuffers
// builders this package encodes with. It is regenerated from strand.fbs with
// flatc 2.0.8 (Debian package flatbuffers-compiler) and committed; CI checks
// that regenerating changes nothing.
//
//go:generate flatc --go --go-namespace wire --gen-onefile -o wire strand.fbs
//go:generate gofmt -w wire
