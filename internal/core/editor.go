package core

import "net/http"

// HeaderEditOp says what a header edit does.
type HeaderEditOp uint8

// Header edit operations.
const (
	HeaderSet HeaderEditOp = iota + 1
	HeaderAdd
	HeaderRemove
)

// HeaderEdit is one response header change collected in a context.
type HeaderEdit struct {
	Op    HeaderEditOp
	Name  string
	Value string
}

// editor collects status and header edits.
type editor struct {
	status int
	edits  []HeaderEdit
}

// SetStatus sets the response status.
func (e *editor) SetStatus(code int) { e.status = code }

// SetHeader sets a response header.
func (e *editor) SetHeader(name, value string) {
	e.edits = append(e.edits, HeaderEdit{Op: HeaderSet, Name: name, Value: value})
}

// AddHeader adds a response header value.
func (e *editor) AddHeader(name, value string) {
	e.edits = append(e.edits, HeaderEdit{Op: HeaderAdd, Name: name, Value: value})
}

// RemoveHeader removes a response header.
func (e *editor) RemoveHeader(name string) {
	e.edits = append(e.edits, HeaderEdit{Op: HeaderRemove, Name: name})
}

// Status returns the collected status (0: unchanged).
func (e *editor) Status() int { return e.status }

// HeaderEdits returns the collected header edits in call order.
func (e *editor) HeaderEdits() []HeaderEdit { return e.edits }

// reset keeps the edits' backing array: the host has applied (or dropped)
// the edits before it released the context.
func (e *editor) reset() { e.status, e.edits = 0, e.edits[:0] }

// ApplyHeaderEdits applies edits to h in order.
func ApplyHeaderEdits(h http.Header, edits []HeaderEdit) {
	for _, e := range edits {
		switch e.Op {
		case HeaderSet:
			h.Set(e.Name, e.Value)
		case HeaderAdd:
			h.Add(e.Name, e.Value)
		case HeaderRemove:
			h.Del(e.Name)
		}
	}
}
