// Package kafkatopics checks and creates Kafka topics the same way for the
// status sink and the command intake: existing topics are never altered,
// and another instance creating a topic at the same time is not an error.
package kafkatopics

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// ErrTopic wraps a topic-level error a broker reported in its metadata
// (other than "unknown topic", which means missing).
var ErrTopic = errors.New("kafkatopics: topic error")

// Valid reports whether t is a legal Kafka topic name.
func Valid(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Missing returns those of names that do not exist. A failed metadata
// request is returned as is; a topic-level error wraps ErrTopic.
func Missing(ctx context.Context, c *kafka.Client, names []string) ([]string, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, want := range names {
		found := false
		for _, t := range md.Topics {
			if t.Name != want {
				continue
			}
			switch {
			case t.Error == nil && len(t.Partitions) > 0:
				found = true
			case t.Error != nil && !errors.Is(t.Error, kafka.UnknownTopicOrPartition):
				return nil, fmt.Errorf("%w: %s: %w", ErrTopic, want, t.Error)
			}
		}
		if !found {
			missing = append(missing, want)
		}
	}
	return missing, nil
}

// Create creates topics with partitions and replicationFactor (0: the
// broker's default.replication.factor) and the config entries given.
func Create(ctx context.Context, c *kafka.Client, names []string, partitions, replicationFactor int, config map[string]string) error {
	rf := replicationFactor
	if rf == 0 {
		rf = -1 // the broker's default.replication.factor
	}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range names {
		tc := kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: rf}
		for k, v := range config {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := c.CreateTopics(ctx, req)
	if err != nil {
		return err
	}
	for _, t := range names {
		if err := resp.Errors[t]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s (partitions %d, replication factor %d, config %v): %w", t, partitions, rf, config, err)
		}
	}
	return nil
}
