package bench

import (
	"context"
	"errors"
	"io"
	"testing"
)

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://192.0.2.1:8080/notifications"},
		{"-url", "http://example.com/notifications"},
		{"-url", "http://127.0.0.1:1/n", "-nats", "nats://192.0.2.1:4222"},
		{"-url", "http://127.0.0.1:1/n", "-kafka", "192.0.2.1:9092"},
		{"-kafka", "127.0.0.1:9092"}, // in-process bridge has no Kafka
		{"-shape", "xml"},
		{"-c", "0"},
		{"-nats-consumer", "pull"},
		{"-latency-at", "1.5"},
		{"-latency-at", "0.5", "-rate", "100"},
		{"-mem-every", "0s"},
		{"-rounds", "0"},
		{"-cpuprofile", "x.prof"}, // the default 5 rounds would mix the phases into it
		{"extra"},
	} {
		if err := Main(context.Background(), "test", args, io.Discard, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want ErrUsage (exit status 2)", args, err)
		}
	}
	o, err := parseFlags([]string{"-url", "http://192.0.2.1:8080/notifications", "-nats", "nats://192.0.2.1:4222", "-allow-remote"}, io.Discard)
	if err != nil || o.ceilings || o.inProcess {
		t.Errorf("-allow-remote: %v, %+v", err, o)
	}
	o, err = parseFlags([]string{"-url", "http://localhost:8080/notifications", "-n", "5"}, io.Discard)
	if err != nil || o.natsURL != "nats://127.0.0.1:4222" || o.count != 5 || o.dur != countSafetyLimit {
		t.Errorf("defaults with -url: %v, %+v", err, o)
	}
}
