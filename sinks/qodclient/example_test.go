package qodclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/qodclient"
)

// exampleNATS runs a bridge in-process (embedded NATS, the QoD simulator)
// and connects to it as an application. Against a running bridge this is
// nats.Connect with its URL and credentials.
func exampleNATS() (*nats.Conn, func()) {
	b, err := startBridge(false, qodsim.Options{})
	if err != nil {
		log.Fatal(err)
	}
	nc, err := b.connect()
	if err != nil {
		log.Fatal(err)
	}
	return nc, func() { nc.Close(); b.Close() }
}

// A session's life: create it, watch it become AVAILABLE, delete it and
// watch it end.
func Example() {
	nc, stop := exampleNATS()
	defer stop()

	c, err := qodclient.NewNATS(nc, qodclient.NATSOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := c.Create(ctx, qodclient.CreateSession{
		Device:            &qodclient.Device{PhoneNumber: "+36721601234567"},
		ApplicationServer: qodclient.ApplicationServer{IPv4Address: "233.252.0.2"},
		QoSProfile:        "QOS_L",
		Duration:          3600,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", s.QoSStatus, s.QoSProfile, s.Duration)

	for ev, err := range c.Watch(ctx, s.SessionID) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.QoSStatus == qodclient.StatusAvailable {
			fmt.Println("status:", ev.QoSStatus)
			break
		}
	}
	if err := c.Delete(ctx, s.SessionID); err != nil {
		log.Fatal(err)
	}
	for ev, err := range c.Watch(ctx, s.SessionID) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.QoSStatus == qodclient.StatusUnavailable {
			fmt.Println("status:", ev.QoSStatus, ev.StatusInfo)
			break
		}
	}
	// Output:
	// created: REQUESTED QOS_L 3600
	// status: AVAILABLE
	// status: UNAVAILABLE DELETE_REQUESTED
}

// Error results are *qodclient.Error, with the CAMARA ErrorInfo, and match
// the package's sentinels.
func ExampleError() {
	nc, stop := exampleNATS()
	defer stop()
	c, err := qodclient.NewNATS(nc, qodclient.NATSOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err = c.Get(ctx, "3fa85f64-5717-4562-b3fc-2c963f66afa6")
	var qe *qodclient.Error
	if errors.As(err, &qe) {
		fmt.Println(qe.Status, qe.Code)
	}
	fmt.Println("not found:", errors.Is(err, qodclient.ErrNotFound))

	_, err = c.Extend(ctx, "3fa85f64-5717-4562-b3fc-2c963f66afa6", 0)
	fmt.Println("invalid:", errors.Is(err, qodclient.ErrInvalid))
	// Output:
	// 404 NOT_FOUND
	// not found: true
	// invalid: true
}

// Send publishes a command and returns at once; Await collects its result,
// here from a second client (another process would do as well: the results
// stream keeps results).
func ExampleClient_Send() {
	nc, stop := exampleNATS()
	defer stop()
	sender, err := qodclient.NewNATS(nc, qodclient.NATSOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sender.Close()
	receiver, err := qodclient.NewNATS(nc, qodclient.NATSOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer receiver.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	req := qodclient.CreateSession{
		Device:            &qodclient.Device{PhoneNumber: "+36721601234567"},
		ApplicationServer: qodclient.ApplicationServer{IPv4Address: "233.252.0.2"},
		QoSProfile:        "QOS_M",
		Duration:          600,
	}
	id, err := sender.Send(ctx, qodclient.Command{Action: qodclient.ActionCreate, RequestID: "order-4711", Session: &req})
	if err != nil {
		log.Fatal(err)
	}
	r, err := receiver.Await(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.RequestID, r.Action, r.Status, r.Session.QoSStatus)

	// The same command again (a retry after a timeout, say): the session is
	// not created twice.
	again, err := sender.Create(ctx, req, qodclient.WithRequestID("order-4711"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same session:", again.SessionID == r.Session.SessionID)
	// Output:
	// order-4711 create 201 REQUESTED
	// same session: true
}

// Over Kafka every call goes through the topics: the command to
// qod.commands, the result from qod.results.
func ExampleNewKafka() {
	b, err := startBridge(true, qodsim.Options{}) // a bridge on Kafka, in-process
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := qodclient.NewKafka(ctx, kafkasink.ConnOptions{Brokers: b.Kafka}, qodclient.KafkaOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := c.Create(ctx, qodclient.CreateSession{
		Device:            &qodclient.Device{PhoneNumber: "+36721601234567"},
		ApplicationServer: qodclient.ApplicationServer{IPv4Address: "233.252.0.2"},
		QoSProfile:        "QOS_S",
		Duration:          60,
	})
	if err != nil {
		log.Fatal(err)
	}
	list, err := c.List(ctx, qodclient.Device{PhoneNumber: "+36721601234567"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(list), list[0].SessionID == s.SessionID)
	// Output:
	// 1 true
}
