package qodclient

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkaproduce"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

// KafkaOptions configure NewKafka. Zero values take the bridge's defaults.
type KafkaOptions struct {
	// CommandTopic, ResultTopic and StatusTopic name the topics. Defaults
	// qod.commands, qod.results and qod.status.
	CommandTopic, ResultTopic, StatusTopic string
	// Timeout bounds a call whose ctx has no deadline. Default
	// DefaultTimeout.
	Timeout time.Duration
	// ResultBuffer is how many results (the latest, by requestId) the
	// client keeps for an Await that comes after its result did; the
	// results of other clients' commands pass through it too. Default 1024.
	ResultBuffer int
	// MaxWait is how long a fetch waits for records: it bounds how late
	// the client notices that Close or a ctx ended. Default 250ms.
	MaxWait time.Duration
}

// NewKafka returns a Client of the bridge's Kafka command flow on the
// cluster co names. It starts reading the result topic (every partition,
// from its end) before it returns, so the result of every command sent
// after is seen; ctx bounds that start. The client owns its connections:
// Close releases them.
//
// Kafka has no request/reply path: every call publishes its command and
// awaits the result. Await finds results published after NewKafka
// returned, kept in a bounded buffer (KafkaOptions.ResultBuffer) until
// awaited.
func NewKafka(ctx context.Context, co kafkasink.ConnOptions, o KafkaOptions) (*Client, error) {
	if o.CommandTopic == "" {
		o.CommandTopic = "qod.commands"
	}
	if o.ResultTopic == "" {
		o.ResultTopic = "qod.results"
	}
	if o.StatusTopic == "" {
		o.StatusTopic = "qod.status"
	}
	if o.ResultBuffer <= 0 {
		o.ResultBuffer = 1024
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 250 * time.Millisecond
	}
	tr, addr, err := co.Transport()
	if err != nil {
		return nil, fmt.Errorf("qodclient: NewKafka: %w", err)
	}
	dialer, err := co.Dialer()
	if err != nil {
		return nil, fmt.Errorf("qodclient: NewKafka: %w", err)
	}
	brokers := co.Brokers
	if len(brokers) == 0 {
		brokers = []string{"127.0.0.1:9092"}
	}
	life, end := context.WithCancel(context.Background())
	t := &kafkaTransport{
		o: o, brokers: brokers, dialer: dialer, tr: tr,
		client: &kafka.Client{Addr: addr, Transport: tr},
		// The bridge's own producer: a command goes out at once, not
		// after a batch timer, keyed by murmur2 as Java and franz-go do.
		producer: kafkaproduce.New(kafkaproduce.Options{Client: &kafka.Client{Addr: addr, Transport: tr}, Topic: o.CommandTopic}),
		life:     life, end: end,
		waiters: map[string][]chan result{}, kept: map[string]result{},
	}
	if err := t.startResults(ctx); err != nil {
		_ = t.close()
		return nil, fmt.Errorf("qodclient: NewKafka: %w", err)
	}
	return newClient(t, true, o.Timeout), nil
}

type kafkaTransport struct {
	o        KafkaOptions
	brokers  []string
	dialer   *kafka.Dialer
	tr       *kafka.Transport
	client   *kafka.Client
	producer *kafkaproduce.Producer

	life context.Context
	end  context.CancelFunc
	wg   sync.WaitGroup // the result readers

	mu      sync.Mutex
	waiters map[string][]chan result // requestId → awaiting calls
	kept    map[string]result        // the latest results, by requestId
	order   []string                 // kept's keys, oldest first
}

// partitions returns the sorted partition ids of topic and, for each, the
// first offset and the offset the next record will get.
func (t *kafkaTransport) partitions(ctx context.Context, topic string) (ids []int, first, next map[int]int64, err error) {
	md, err := t.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, tp := range md.Topics {
		if tp.Name != topic {
			continue
		}
		if tp.Error != nil {
			return nil, nil, nil, fmt.Errorf("topic %s: %w", topic, tp.Error)
		}
		for _, p := range tp.Partitions {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil, nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	slices.Sort(ids)
	var reqs []kafka.OffsetRequest
	for _, p := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	res, err := t.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	first, next = map[int]int64{}, map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, nil, nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		first[po.Partition], next[po.Partition] = po.FirstOffset, po.LastOffset
	}
	return ids, first, next, nil
}

func (t *kafkaTransport) reader(topic string, partition int, offset int64) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: t.brokers, Topic: topic, Partition: partition, Dialer: t.dialer,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: t.o.MaxWait})
	if err := r.SetOffset(offset); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("reader of %s/%d: %w", topic, partition, err)
	}
	return r, nil
}

// startResults starts one reader per partition of the result topic at its
// end.
func (t *kafkaTransport) startResults(ctx context.Context) error {
	ids, _, next, err := t.partitions(ctx, t.o.ResultTopic)
	if err != nil {
		return err
	}
	for _, p := range ids {
		r, err := t.reader(t.o.ResultTopic, p, next[p])
		if err != nil {
			return err
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer func() { _ = r.Close() }()
			for {
				m, err := r.ReadMessage(t.life)
				if err != nil {
					if t.life.Err() != nil {
						return
					}
					// kafka-go retries fetches itself; an error here is
					// a closed reader or a lost partition: wait, retry.
					select {
					case <-t.life.Done():
						return
					case <-time.After(time.Second):
					}
					continue
				}
				t.deliver(m.Key, m.Value)
			}
		}()
	}
	return nil
}

// deliver hands a result to the calls awaiting it, or keeps it.
func (t *kafkaTransport) deliver(key, value []byte) {
	var r struct {
		RequestID string `json:"requestId"`
	}
	if json.Unmarshal(value, &r) != nil || r.RequestID == "" {
		return
	}
	// The key is the session when the bridge knew it, else the requestId.
	res := result{value: value}
	if string(key) != r.RequestID {
		res.session = string(key)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ws, ok := t.waiters[r.RequestID]; ok {
		delete(t.waiters, r.RequestID)
		for _, w := range ws {
			w <- res // buffered, one value each, sent once
		}
	}
	if _, ok := t.kept[r.RequestID]; !ok {
		t.order = append(t.order, r.RequestID)
	}
	t.kept[r.RequestID] = res
	for len(t.order) > t.o.ResultBuffer {
		delete(t.kept, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *kafkaTransport) request(_ context.Context, cmd *command.Command, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("qodclient: %s %s: %w", cmd.Action, cmd.RequestID, errSyncUnsupported)
}

func (t *kafkaTransport) publish(ctx context.Context, cmd *command.Command, body []byte) error {
	// Keyed by session, so that one session's commands share a partition
	// and run in order.
	key := cmd.SessionID
	if key == "" {
		key = cmd.RequestID
	}
	err := t.producer.Produce(ctx, kafka.Message{Key: []byte(key), Value: body, Time: time.Now(),
		Headers: []kafka.Header{{Key: command.HeaderAction, Value: []byte(cmd.Action)}}})
	if err != nil {
		return fmt.Errorf("qodclient: %s %s: write to %s: %w", cmd.Action, cmd.RequestID, t.o.CommandTopic, err)
	}
	return nil
}

func (t *kafkaTransport) await(ctx context.Context, requestID string) (result, error) {
	t.mu.Lock()
	if v, ok := t.kept[requestID]; ok {
		t.mu.Unlock()
		return v, nil
	}
	ch := make(chan result, 1)
	t.waiters[requestID] = append(t.waiters[requestID], ch)
	t.mu.Unlock()
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	ws := slices.DeleteFunc(t.waiters[requestID], func(w chan result) bool { return w == ch })
	if len(ws) == 0 {
		delete(t.waiters, requestID)
	} else {
		t.waiters[requestID] = ws
	}
	t.mu.Unlock()
	return result{}, fmt.Errorf("qodclient: await result %s on %s: %w", requestID, t.o.ResultTopic, ctx.Err())
}

type kafkaItem struct {
	ev  StatusEvent
	err error
}

func (t *kafkaTransport) watch(ctx context.Context, sessionID string) iter.Seq2[StatusEvent, error] {
	return func(yield func(StatusEvent, error) bool) {
		topic := t.o.StatusTopic
		ids, first, next, err := t.partitions(ctx, topic)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			yield(StatusEvent{}, fmt.Errorf("qodclient: watch %s: %w", topic, err))
			return
		}
		if sessionID != "" {
			// The partition the bridge's murmur2 balancer gives the key.
			p := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(sessionID)}, ids...)
			ids = []int{p}
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		items := make(chan kafkaItem)
		for _, p := range ids {
			r, err := t.reader(topic, p, first[p])
			if err != nil {
				yield(StatusEvent{}, fmt.Errorf("qodclient: watch %s: %w", topic, err))
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = r.Close() }()
				t.watchPartition(ctx, r, sessionID, next[p], items)
			}()
		}
		for {
			select {
			case it := <-items:
				if !yield(it.ev, it.err) || (it.err != nil && !errors.Is(it.err, ErrDecode)) {
					return
				}
			case <-ctx.Done():
				yield(StatusEvent{}, ctx.Err())
				return
			}
		}
	}
}

// watchPartition reads one partition of the status topic from its start:
// the records before end (the offset the next record got when the watch
// began) only to find each session's last status, sent first (Live
// false), the rest as they come.
func (t *kafkaTransport) watchPartition(ctx context.Context, r *kafka.Reader, sessionID string, end int64, items chan<- kafkaItem) {
	send := func(it kafkaItem) bool {
		select {
		case items <- it:
			return it.err == nil || errors.Is(it.err, ErrDecode)
		case <-ctx.Done():
			return false
		}
	}
	type last struct {
		offset int64
		m      kafka.Message
	}
	var snapshot map[string]last
	if r.Offset() < end {
		snapshot = map[string]last{}
	}
	flush := func() bool {
		all := make([]last, 0, len(snapshot))
		for _, l := range snapshot {
			all = append(all, l)
		}
		slices.SortFunc(all, func(a, b last) int { return cmp.Compare(a.offset, b.offset) })
		snapshot = nil
		for _, l := range all {
			ev, err := t.decode(l.m)
			if !send(kafkaItem{ev, err}) {
				return false
			}
		}
		return true
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				send(kafkaItem{err: fmt.Errorf("qodclient: watch %s/%d: %w", m.Topic, m.Partition, err)})
			}
			return
		}
		if sessionID != "" && string(m.Key) != sessionID {
			if snapshot != nil && m.Offset >= end-1 && !flush() {
				return
			}
			continue
		}
		if snapshot != nil {
			snapshot[string(m.Key)] = last{m.Offset, m}
			if m.Offset >= end-1 && !flush() {
				return
			}
			continue
		}
		ev, err := t.decode(m)
		ev.Live = true
		if !send(kafkaItem{ev, err}) {
			return
		}
	}
}

func (t *kafkaTransport) decode(m kafka.Message) (StatusEvent, error) {
	header := func(name string) string {
		for _, h := range m.Headers {
			if strings.EqualFold(h.Key, name) {
				return string(h.Value)
			}
		}
		return ""
	}
	ev, err := decodeStatus(header, bridge.KafkaBinding, false, m.Value)
	if err != nil {
		return ev, fmt.Errorf("qodclient: watch: record %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	return ev, nil
}

func (t *kafkaTransport) close() error {
	t.end()
	t.wg.Wait()
	t.producer.Close()
	t.tr.CloseIdleConnections()
	return nil
}
