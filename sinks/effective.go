package sinks

import (
	"cmp"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks/kafkacmd"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/kafkaview"
	"github.com/qodbridge/qodbridge/sinks/natscmd"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

// nats.stream.discard names natssink.StreamOptions.DiscardNew: "old" is its
// zero value.
const (
	discardOld = "old"
	discardNew = "new"
)

// Effective returns a copy of cfg (a resolved config) in which every broker
// and command-intake setting left zero holds the default of the broker
// package that applies it, so that `qodbridge check` can show what runs.
// Brokers runs on these values: a setting that several packages take (the
// subject prefix, the lanes, the publish timeout, the partitions) then has
// one value in all of them, the one shown.
func Effective(cfg *config.Config) *config.Config {
	e := *cfg

	n := &e.NATS
	n.SubjectPrefix = cmp.Or(n.SubjectPrefix, natssink.DefaultPrefix)
	n.Name = cmp.Or(n.Name, natssink.DefaultConnName)
	s := &n.Stream
	s.Name = cmp.Or(s.Name, natssink.DefaultStreamName)
	s.Replicas = cmp.Or(s.Replicas, natssink.DefaultReplicas)
	s.DuplicateWindow = cmp.Or(s.DuplicateWindow, config.Duration(natssink.DefaultDuplicateWindow))
	s.Discard = cmp.Or(s.Discard, discardOld)
	n.Embedded.Sync = cmp.Or(n.Embedded.Sync, natssink.DefaultSyncInterval.String())

	k := &e.Kafka
	k.ClientID = cmp.Or(k.ClientID, kafkasink.DefaultClientID)
	k.DialTimeout = cmp.Or(k.DialTimeout, config.Duration(kafkasink.DefaultDialTimeout))
	k.Topic = cmp.Or(k.Topic, kafkasink.DefaultTopic)
	k.BatchTimeout = cmp.Or(k.BatchTimeout, config.Duration(kafkasink.DefaultBatchTimeout))
	k.BatchSize = cmp.Or(k.BatchSize, kafkasink.DefaultBatchSize)
	k.Compression = cmp.Or(k.Compression, kafkasink.DefaultCompression)
	k.Partitions = cmp.Or(k.Partitions, kafkasink.DefaultPartitions)
	k.CommandTopic = cmp.Or(k.CommandTopic, kafkacmd.DefaultTopic)
	k.ResultTopic = cmp.Or(k.ResultTopic, kafkacmd.DefaultResultTopic)
	k.DLQTopic = cmp.Or(k.DLQTopic, kafkacmd.DefaultDLQTopic)
	k.GroupID = cmp.Or(k.GroupID, kafkacmd.DefaultGroupID)

	// Every sink bounds its publishes by ingress.publish_timeout.
	e.Ingress.PublishTimeout = cmp.Or(e.Ingress.PublishTimeout, config.Duration(natssink.DefaultPublishTimeout))

	v := &e.View
	v.Bucket = cmp.Or(v.Bucket, natsview.DefaultBucket)
	v.Topic = cmp.Or(v.Topic, kafkaview.DefaultTopic)
	v.Retention = cmp.Or(v.Retention, config.Duration(natsview.DefaultRetention))

	c := &e.Commands
	c.Lanes = cmp.Or(c.Lanes, command.DefaultLanes)
	c.AckWait = cmp.Or(c.AckWait, config.Duration(natscmd.DefaultAckWait))
	c.MaxDeliver = cmp.Or(c.MaxDeliver, natscmd.DefaultMaxDeliver)
	c.ResultMaxAge = cmp.Or(c.ResultMaxAge, config.Duration(natscmd.DefaultResultMaxAge))
	micro := c.MicroOn()
	c.Micro = &micro
	return &e
}
