package main

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// checkURL accepts only ws:// and wss:// URLs whose host is a loopback
// address, and rewrites "localhost" to 127.0.0.1 so that IPv4 source
// addresses apply.
func checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("-url: scheme %q: only ws:// and wss:// are supported", u.Scheme)
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return "", fmt.Errorf("-url: host %q is not a loopback address: this tool only loads servers on this machine", u.Hostname())
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	u.Host = net.JoinHostPort(ip.String(), port)
	return u.String(), nil
}

// parseSrcIPs reads the -src-ips flag: empty (kernel's choice), a count N
// (127.0.0.1 .. 127.0.0.N), a range "127.0.0.1-127.0.0.50", or a
// comma-separated list. Every address must be IPv4 loopback.
func parseSrcIPs(s string) ([]net.IP, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 254 {
			return nil, fmt.Errorf("-src-ips: count %d outside 1..254", n)
		}
		s = fmt.Sprintf("127.0.0.1-127.0.0.%d", n)
	}
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := loopback4(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = loopback4(hi); err != nil {
				return nil, err
			}
		}
		if b.Less(a) {
			return nil, fmt.Errorf("-src-ips: range %q runs backwards", part)
		}
		for ip := a; ; ip = ip.Next() {
			out = append(out, net.IP(ip.AsSlice()))
			if ip == b || len(out) > 1<<16 {
				break
			}
		}
	}
	if len(out) > 1<<16 {
		return nil, fmt.Errorf("-src-ips: more than %d addresses", 1<<16)
	}
	return out, nil
}

func loopback4(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("-src-ips: %w", err)
	}
	if !ip.Is4() || !ip.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("-src-ips: %s is not an IPv4 loopback address", ip)
	}
	return ip, nil
}
