package ingress

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr is the address of the client that sent r: the direct peer's,
// or, when the peer is one of trusted (a reverse proxy or load balancer the
// operator declared), the nearest address in X-Forwarded-For that is not
// itself a trusted proxy. X-Forwarded-For from any other peer is ignored:
// a client can write anything there.
func ClientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := peerHost(r.RemoteAddr)
	if len(trusted) == 0 || !trustedAddr(peer, trusted) {
		return peer
	}
	// Right to left: each proxy appends the address it got the request
	// from, so the rightmost untrusted entry is the first hop no trusted
	// proxy vouches beyond.
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := strings.TrimSpace(parts[j])
			if a == "" {
				continue
			}
			if !trustedAddr(a, trusted) {
				return a
			}
		}
	}
	return peer
}

// ViaTLS reports whether r reached the bridge over TLS: on a TLS listener,
// or through a trusted proxy (see ClientAddr) that says so with
// X-Forwarded-Proto: https.
func ViaTLS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	if len(trusted) == 0 || !trustedAddr(peerHost(r.RemoteAddr), trusted) {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

func peerHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

func trustedAddr(s string, trusted []netip.Prefix) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
