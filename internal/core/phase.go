package core

import "time"

// Phase is an HTTP phase a plugin entry may handle.
type Phase uint8

// Phases, in the order they run for a request.
const (
	PhaseRequestFilter      Phase = iota + 1 // before the terminal: answer, upgrade or Next
	PhaseResponseFilter                      // status and headers of the answer
	PhaseResponseBodyFilter                  // the whole answer body
	PhaseLogging                             // after the answer
)

func (p Phase) String() string {
	switch p {
	case PhaseRequestFilter:
		return "request_filter"
	case PhaseResponseFilter:
		return "response_filter"
	case PhaseResponseBodyFilter:
		return "response_body_filter"
	case PhaseLogging:
		return "logging"
	}
	return "unknown"
}

// LoggingFunc handles the Logging phase. It runs after the answer was sent
// and cannot change it. The *LogEntry is valid until it returns (it is
// recycled): keep a copy, not the pointer.
type LoggingFunc func(entry *LogEntry)

// LogEntry describes a finished request for the Logging phase.
type LogEntry struct {
	Request  *Request
	Status   int           // 101 for an upgrade
	BytesIn  int64         // request body bytes read
	BytesOut int64         // response body bytes written
	Duration time.Duration // from the request's arrival to the answer's end
	Err      error         // why the host failed the request, if it did
	Values   map[string]any
}
