package config

import (
	"net/url"
	"strings"
)

// RedactURL is s, a URL or a comma-separated list of them (a NATS URL may
// be several), with the user info of each replaced by "***": the form in
// which a URL from the configuration is printed or logged. Unlike
// url.URL.Redacted it hides the user name too, which for nats://token@host
// is the secret. Something that does not parse as a URL is returned with
// everything up to its last '@' masked, the same way.
func RedactURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactOne(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactOne(s string) string {
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		u.User = nil
		scheme, rest, ok := strings.Cut(u.String(), "://")
		if ok {
			return scheme + "://***@" + rest
		}
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		prefix := ""
		if scheme, _, ok := strings.Cut(s, "://"); ok && len(scheme) < at {
			prefix = scheme + "://"
		}
		return prefix + "***" + s[at:]
	}
	return s
}
