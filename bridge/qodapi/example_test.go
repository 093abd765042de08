package qodapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/qodbridge/qodbridge/bridge/qodapi"
)

// Create a session whose status changes are sent to the bridge's ingress.
func Example() {
	// A stand-in QoD 1.x platform.
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"sessionId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","qosStatus":"REQUESTED",`+
			`"duration":3600,"qosProfile":"QOS_L","applicationServer":{"ipv4Address":"233.252.0.2"},`+
			`"device":{"phoneNumber":"+36721601234567"},"sink":"https://bridge.example/notifications/k1"}`)
	}))
	defer platform.Close()

	client, err := qodapi.New(qodapi.Options{
		BaseURL: platform.URL + "/quality-on-demand/v1",
		Dialect: qodapi.DialectV1,
		Auth:    qodapi.Auth{BearerToken: "api-token"},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The CAMARA CreateSession body, as a user sent it.
	body := json.RawMessage(`{"device":{"phoneNumber":"+36721601234567"},
		"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600}`)
	// Point its notifications at the bridge, with a per-session token that
	// outlives the session.
	expires := time.Now().Add(3600*time.Second + 24*time.Hour)
	body, err = qodapi.WithSink(body, "https://bridge.example/notifications/k1", "per-session-token", expires)
	if err != nil {
		fmt.Println(err)
		return
	}

	s, err := client.CreateSession(context.Background(), "c0ffee-1", body)
	if err != nil {
		if qodapi.Retryable(err) {
			fmt.Println("try again after", qodapi.RetryAfter(err))
		}
		fmt.Println(err)
		return
	}
	fmt.Println(s.ID, s.QoSStatus, s.Duration)
	// Output: 3fa85f64-5717-4562-b3fc-2c963f66afa6 REQUESTED 1h0m0s
}
