// Package stats records latencies into HDR histograms and summarises them as
// the percentiles the benchmark reports.
//
// Why an HDR histogram (github.com/HdrHistogram/hdrhistogram-go): it records
// a value in constant time with no allocation, keeps a bounded relative error
// (3 significant digits here) across the whole 1 ns .. 60 s range, and merges
// exactly, so p99.9 and max from many connections are true percentiles of all
// samples, not averages of per-connection percentiles. Keeping every sample
// and sorting would cost memory proportional to the message count.
//
// Concurrency: Recorder is safe for concurrent use; each shard has its own
// mutex so recording from many connections does not contend on one lock.
// Summary values are plain data.
package stats
