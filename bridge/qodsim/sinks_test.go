package qodsim

import (
	"net/url"
	"testing"
)

func TestAllowedSinks(t *testing.T) {
	s, err := New(Options{AllowedSinks: append([]string{"https://bridge.example/notifications"}, LoopbackSinks...)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for raw, want := range map[string]bool{
		"https://bridge.example/notifications/k1abc":    true,
		"https://bridge.example/notifications":          true,
		"https://bridge.example/notificationsX":         false,
		"https://bridge.example/other":                  false,
		"http://bridge.example/notifications/k":         false, // scheme
		"https://evil.example/notifications/k":          false,
		"http://127.0.0.1:8080/notifications/k":         true,
		"http://localhost:9/x":                          true,
		"http://[::1]:8080/n":                           true,
		"http://127.0.0.1:8080@evil.example/n":          false, // user info: the host is evil.example
		"http://user@127.0.0.1:8080/n":                  false,
		"http://10.0.0.1:8080/notifications":            false,
		"https://bridge.example.evil.com/notifications": false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.sinkAllowed(u); got != want {
			t.Errorf("%s: allowed %v, want %v", raw, got, want)
		}
	}
	if _, err := New(Options{AllowedSinks: []string{"not a url"}}); err == nil {
		t.Error("an allowed sink that is not a URL was accepted")
	}
}
