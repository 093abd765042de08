package ingress

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// TestAcceptsEverySimulatorNotification drives the simulator through the
// life cycle of ordinary and scenario sessions, in every notification
// format and through both API versions, with the sink pointing at this
// ingress under a per-session credential. Every notification must be
// answered 204 and normalize to the status the simulator announced.
func TestAcceptsEverySimulatorNotification(t *testing.T) {
	secret := []byte("secret-one-0123456789")
	for _, format := range []qodsim.Format{qodsim.FormatCAMARAv1, qodsim.FormatCAMARAv0, qodsim.FormatNaC} {
		for _, base := range []string{qodsim.BasePathV1, qodsim.BasePathV0} {
			t.Run(string(format)+base, func(t *testing.T) {
				pub := &recorder{}
				h := newHandler(t, pub, nil)
				var mu sync.Mutex
				codes := map[int]int{}
				recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					rw := &statusWriter{ResponseWriter: w}
					h.ServeHTTP(rw, r)
					mu.Lock()
					codes[rw.status]++
					mu.Unlock()
				}))
				defer recv.Close()
				clock := qodsim.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
				sim, err := qodsim.New(qodsim.Options{Format: format, Clock: clock, AvailableDelay: time.Second, MaxAttempts: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer sim.Close()
				api := httptest.NewServer(sim.Handler())
				defer api.Close()

				devices := []string{"+36721600000001", "+36721600000002", qodsim.DefaultUnavailable[1], qodsim.DefaultNetworkTerminated[1], qodsim.DefaultAvailable[1]}
				ids := make([]string, len(devices))
				for i, dev := range devices {
					key := bridge.NewSinkKey(time.Now().Add(time.Hour))
					sink := recv.URL + "/notifications/" + key
					tok := bridge.SinkToken(secret, key)
					var target string
					if base == qodsim.BasePathV1 {
						target = fmt.Sprintf(`"sink":%q,"sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":%q,"accessTokenExpiresUtc":"2027-01-01T00:00:00Z","accessTokenType":"bearer"}`, sink, tok)
					} else {
						target = fmt.Sprintf(`"webhook":{"notificationUrl":%q,"notificationAuthToken":%q}`, sink, "Bearer "+tok)
					}
					body := fmt.Sprintf(`{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60,%s}`, dev, target)
					resp, err := http.Post(api.URL+base+"/sessions", "application/json", strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					var created struct {
						SessionID string `json:"sessionId"`
					}
					decodeJSON(t, resp, &created)
					if resp.StatusCode != 201 || created.SessionID == "" {
						t.Fatalf("create %s: status %d", dev, resp.StatusCode)
					}
					ids[i] = created.SessionID
				}
				clock.Advance(2 * time.Second) // AVAILABLE (or the scenarios' UNAVAILABLE)
				req, _ := http.NewRequest(http.MethodDelete, api.URL+base+"/sessions/"+ids[1], nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 204 {
					t.Fatalf("delete: %v %v", resp, err)
				}
				resp.Body.Close()
				clock.Advance(2 * time.Minute) // the rest expire
				if err := sim.Flush(t.Context()); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(codes) != 1 || codes[204] == 0 {
					t.Fatalf("ingress answered %v", codes)
				}
				last := map[string]bridge.Event{}
				for _, ev := range pub.events() {
					last[ev.SessionID] = ev
				}
				want := []struct {
					st   bridge.QoSStatus
					info bridge.StatusInfo
				}{
					{bridge.StatusUnavailable, bridge.InfoDurationExpired},
					{bridge.StatusUnavailable, bridge.InfoDeleteRequested},
					{bridge.StatusUnavailable, ""},
					{bridge.StatusUnavailable, bridge.InfoNetworkTerminated},
					{bridge.StatusUnavailable, bridge.InfoDurationExpired},
				}
				for i, id := range ids {
					if got := last[id]; got.QoSStatus != want[i].st || got.StatusInfo != want[i].info {
						t.Errorf("session of %s ended %s/%s, want %s/%s", devices[i], got.QoSStatus, got.StatusInfo, want[i].st, want[i].info)
					}
				}
				if codes[204] != len(pub.events()) {
					t.Errorf("%d answers 204 but %d events", codes[204], len(pub.events()))
				}
			})
		}
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
