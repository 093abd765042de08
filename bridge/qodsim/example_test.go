package qodsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// A session's whole life, driven by a ManualClock: create, AVAILABLE after
// the default 1s delay, UNAVAILABLE when its 60s have passed. Each change
// reaches the sink as a CloudEvent.
func Example() {
	got := make(chan string, 2)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Type string
			Data struct{ QosStatus, StatusInfo string }
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		got <- strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Header.Get("Authorization"), ev.Data.QosStatus, ev.Data.StatusInfo))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()

	clock := qodsim.NewManualClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	sim, err := qodsim.New(qodsim.Options{Clock: clock})
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	api := httptest.NewServer(sim.Handler())
	defer api.Close()

	body := `{"device": {"phoneNumber": "+36721601234567"},
	          "applicationServer": {"ipv4Address": "233.252.0.2"},
	          "qosProfile": "QOS_L", "duration": 60,
	          "sink": "` + sink.URL + `",
	          "sinkCredential": {"credentialType": "ACCESSTOKEN", "accessToken": "secret",
	                             "accessTokenExpiresUtc": "2030-01-01T00:00:00Z", "accessTokenType": "bearer"}}`
	resp, err := http.Post(api.URL+"/quality-on-demand/v1/sessions", "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	var s struct{ QosStatus string }
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, s.QosStatus)

	clock.Advance(time.Second)
	fmt.Println(<-got)
	clock.Advance(time.Minute)
	fmt.Println(<-got)
	// Output:
	// 201 REQUESTED
	// Bearer secret AVAILABLE
	// Bearer secret UNAVAILABLE DURATION_EXPIRED
}
