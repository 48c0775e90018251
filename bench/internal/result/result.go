package result

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/strandws/strand/bench/internal/stats"
)

// Result is one run of cmd/loadgen.
type Result struct {
	// Labels set by the caller (bench/run.sh) to group runs.
	Server string `json:"server"`
	Cell   string `json:"cell"`

	// Configuration of the run.
	Mode        string  `json:"mode"` // echo, broadcast or idle
	URL         string  `json:"url"`
	Conns       int     `json:"conns"`
	Size        int     `json:"size"`
	Text        bool    `json:"text"`
	Depth       int     `json:"depth"`
	Rate        float64 `json:"rate"` // messages/s per connection; 0 = as fast as possible
	DurationSec float64 `json:"duration_s"`
	WarmupSec   float64 `json:"warmup_s"`
	StartedAt   string  `json:"started_at"`        // RFC 3339
	Payload     string  `json:"payload,omitempty"` // "json" for the JSON-like flavour; empty: binary, or text if Text
	// CompressOffer is the permessage-deflate offer: "" (none),
	// "no-takeover" or "takeover".
	CompressOffer string `json:"compress_offer,omitempty"`

	// Outcome.
	Connected    int               `json:"connected"`  // connections whose handshake succeeded
	Sent         uint64            `json:"sent"`       // messages sent in the measured window
	Delivered    uint64            `json:"delivered"`  // messages received in the measured window (broadcast: every copy)
	MsgsPerSec   float64           `json:"msgs_per_s"` // Delivered / duration
	Latency      stats.Summary     `json:"latency"`    // send to receive, measured window only
	Errors       map[string]uint64 `json:"errors"`     // by kind; see cmd/loadgen
	ErrorTotal   uint64            `json:"error_total"`
	ErrorSamples []string          `json:"error_samples,omitempty"`

	// Compression and bytes on the wire (results before these fields have
	// none: zero).
	CompressedConns     int     `json:"compressed_conns,omitempty"`        // connections that negotiated permessage-deflate
	ServerTakeoverConns int     `json:"server_takeover_conns,omitempty"`   // ... with the server keeping its context
	WireBytesSent       uint64  `json:"wire_bytes_sent,omitempty"`         // TCP payload bytes written after the handshakes, whole run
	WireBytesRecv       uint64  `json:"wire_bytes_recv,omitempty"`         // TCP payload bytes read after the handshakes, whole run
	WireBytesPerMsgSent float64 `json:"wire_bytes_per_msg_sent,omitempty"` // WireBytesSent / messages sent in the whole run
	WireBytesPerMsgRecv float64 `json:"wire_bytes_per_msg_recv,omitempty"` // WireBytesRecv / messages received (broadcast: copies) in the whole run

	// Resource use, when known.
	ClientCPUPct      float64 `json:"client_cpu_pct"`           // load generator CPU over the measured window, % of one core
	ServerCPUPct      float64 `json:"server_cpu_pct,omitempty"` // server CPU over the measured window, % of one core
	ServerRSSBeforeKB int64   `json:"server_rss_before_kb,omitempty"`
	ServerRSSAfterKB  int64   `json:"server_rss_after_kb,omitempty"`
	ServerPeakRSSKB   int64   `json:"server_peak_rss_kb,omitempty"`
	RSSPerConnBytes   float64 `json:"rss_per_conn_bytes,omitempty"` // idle mode: (after - before) / connected
}

// Write stores r as indented JSON at path.
func Write(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("result: encode: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return nil
}

// Read loads a result written by Write.
func Read(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("result: %s: %w", path, err)
	}
	return &r, nil
}
