package sdk

import (
	"encoding/json"
	"fmt"
)

// Settings are a plugin's settings as its host hands them over: the
// plugin's `config:` map of strand.yaml, as JSON. The zero value holds
// none.
type Settings struct{ raw []byte }

// NewSettings returns Settings holding raw (JSON, or nil for none), for a
// test of code that reads Settings; the slice is kept. Hosts hand settings
// over with Plugin.Configure instead.
func NewSettings(raw []byte) Settings { return Settings{raw: raw} }

// Raw returns the settings as the host sent them (JSON), or nil when the
// configuration has none. Do not modify it.
func (s Settings) Raw() []byte { return s.raw }

// Decode unmarshals the settings into v (encoding/json rules). No settings
// leave v untouched and return nil.
func (s Settings) Decode(v any) error {
	if len(s.raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(s.raw, v); err != nil {
		return fmt.Errorf("sdk: plugin settings: %w", err)
	}
	return nil
}

// OnConfig registers fn to receive the plugin's settings before it serves
// traffic, and returns p. Out of process, sdk/serve calls fn with the
// settings the host sent in its handshake (an error refuses to serve and
// ends the session). In process there is no handshake: the program that
// builds the plugin passes its settings itself, with Configure.
func (p *Plugin) OnConfig(fn func(Settings) error) *Plugin {
	if fn == nil {
		p.core().SetOnConfig(nil)
		return p
	}
	p.core().SetOnConfig(func(raw []byte) error { return fn(Settings{raw: raw}) })
	return p
}

// Configure hands raw settings (JSON, or nil) to the function registered
// with OnConfig, if any, and returns its error. sdk/serve calls it with
// the host's settings; an in-process host (or a test) may call it too.
func (p *Plugin) Configure(raw []byte) error {
	fn := p.core().OnConfigFunc()
	if fn == nil {
		return nil
	}
	return fn(raw)
}
