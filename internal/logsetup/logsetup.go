// Package logsetup turns the examples' -log-format and -log-level flags
// into a *slog.Logger.
package logsetup

import (
	"fmt"
	"io"
	"log/slog"
)

// Formats and Levels are the accepted flag values, for usage lines.
const (
	Formats = "text or json"
	Levels  = "debug, info, warn or error"
)

// New returns a logger writing to w in format ("text" or "json") from
// level ("debug", "info", "warn" or "error") up. An unknown value is an
// error naming the flag and the accepted values.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("unknown -log-level %q: want %s", level, Levels)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown -log-format %q: want %s", format, Formats)
}
