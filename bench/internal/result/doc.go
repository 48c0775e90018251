// Package result is the JSON document one load-generator run writes and the
// report generator reads. Fields are only ever added, never renamed, so old
// result files stay readable.
//
// Concurrency: plain data; no methods mutate shared state.
package result
