// An e2e client built with Debian's segmentio kafka-go 0.2.1
// (golang-github-segmentio-kafka-go-dev) in GOPATH mode, offline, with its defaults:
// CreateTopics v0, Produce v2 (message format v1), Fetch v2, ListOffsets v1, and for
// a group JoinGroup v1, OffsetCommit v2, OffsetFetch v1. Prints one line of counts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/lz4"
	"github.com/segmentio/kafka-go/snappy"
)

func main() {
	brokers := flag.String("brokers", "", "bootstrap address")
	mode := flag.String("mode", "produce", "create, produce or consume")
	topic := flag.String("topic", "", "topic")
	group := flag.String("group", "", "consumer group")
	count := flag.Int("n", 0, "records to produce or consume")
	first := flag.Int("first", 0, "index of the first record produced or expected")
	codec := flag.String("codec", "none", "none, gzip, snappy or lz4")
	flag.Parse()

	switch *mode {
	case "create":
		create(*brokers, *topic)
	case "produce":
		produce(*brokers, *topic, *codec, *first, *count)
	case "consume":
		consume(*brokers, *topic, *group, *first, *count)
	default:
		fail(fmt.Errorf("unknown mode %q", *mode))
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func create(broker, topic string) {
	conn, err := kafka.Dial("tcp", broker)
	fail(err)
	fail(conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}))
	fail(conn.Close())
	fmt.Println("created")
}

func produce(broker, topic, codec string, first, n int) {
	codecs := map[string]kafka.CompressionCodec{
		"none": nil, "gzip": gzip.NewCompressionCodec(),
		"snappy": snappy.NewCompressionCodec(), "lz4": lz4.NewCompressionCodec(),
	}
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers: []string{broker}, Topic: topic, RequiredAcks: -1,
		BatchSize: 50, BatchTimeout: 5 * time.Millisecond,
		CompressionCodec: codecs[codec],
	})
	msgs := make([]kafka.Message, 0, n)
	for i := first; i < first+n; i++ {
		msgs = append(msgs, kafka.Message{
			Key: []byte(fmt.Sprintf("k-%d", i)), Value: []byte(fmt.Sprintf("v-%d", i)),
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(msgs) > 0 { // one call per batch, so each is a message set of its own
		size := 50
		if len(msgs) < size {
			size = len(msgs)
		}
		fail(w.WriteMessages(ctx, msgs[:size]...))
		msgs = msgs[size:]
	}
	fail(w.Close())
	fmt.Printf("produced %d\n", n)
}

// consume reads n records as a member of the group, checks each is the next one
// produced, and commits every 50th and the last.
func consume(broker, topic, group string, first, n int) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{broker}, Topic: topic, GroupID: group,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
		// Close sends no LeaveGroup here, so the next member's join waits for this
		// one's session to lapse: Kafka's shortest (group.min.session.timeout.ms).
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := first; i < first+n; i++ {
		m, err := r.FetchMessage(ctx)
		fail(err)
		if string(m.Value) != fmt.Sprintf("v-%d", i) || string(m.Key) != fmt.Sprintf("k-%d", i) {
			fail(fmt.Errorf("record %d: key %q value %q at offset %d", i, m.Key, m.Value, m.Offset))
		}
		if (i+1-first)%50 == 0 || i+1 == first+n { // each commit is a Raft write
			fail(r.CommitMessages(ctx, m))
		}
	}
	fail(r.Close())
	fmt.Printf("consumed %d\n", n)
}
