package wsframework

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies decides which peers' forwarding headers are believed.
type trustedProxies []netip.Prefix

func parseTrustedProxies(list []string) (trustedProxies, error) {
	var out trustedProxies
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("wsframework: TrustedProxies entry %q is neither an IP nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func (t trustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the client's IP: the socket peer's, unless that peer is
// a trusted proxy, in which case the forwarding chain is walked from the
// nearest hop back to the first address that is not a trusted proxy.
func (t trustedProxies) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(t) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !t.trusts(peer) {
		return host
	}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return host // a malformed chain is not believed
		}
		if !t.trusts(a) || i == 0 {
			return a.Unmap().String()
		}
	}
	return host
}

// forwardedFor lists the client chain from X-Forwarded-For, or from the
// for= parameters of Forwarded (RFC 7239), oldest first.
func forwardedFor(h http.Header) []string {
	var hops []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, v := range xff {
			for part := range strings.SplitSeq(v, ",") {
				if p := strings.TrimSpace(part); p != "" {
					hops = append(hops, p)
				}
			}
		}
		return hops
	}
	for _, v := range h.Values("Forwarded") {
		for elem := range strings.SplitSeq(v, ",") {
			for pair := range strings.SplitSeq(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok || !strings.EqualFold(k, "for") {
					continue
				}
				val = strings.Trim(val, `"`)
				if strings.HasPrefix(val, "[") { // [v6]:port
					if end := strings.IndexByte(val, ']'); end > 0 {
						val = val[1:end]
					}
				} else if host, _, err := net.SplitHostPort(val); err == nil {
					val = host
				}
				hops = append(hops, val)
			}
		}
	}
	return hops
}
