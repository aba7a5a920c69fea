// An e2e client built with Debian's Sarama 1.22 (golang-github-shopify-sarama-dev) in
// GOPATH mode, offline. With no -version it keeps Sarama's default (0.8.2: Produce v0
// with message format v0, Fetch v0, OffsetCommit/OffsetFetch v1); -version 0.10.0.0
// gives Produce v2 and Fetch v2 with format v1, and ClusterAdmin's CreateTopics v0,
// DescribeConfigs v0 and DeleteTopics v0. Prints one line of counts for the test.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/Shopify/sarama"
)

func main() {
	brokers := flag.String("brokers", "", "bootstrap address")
	mode := flag.String("mode", "produce", "produce, consume, admin or dump")
	topic := flag.String("topic", "", "topic")
	group := flag.String("group", "", "group whose offsets consume commits and resumes from")
	count := flag.Int("n", 0, "records to produce or consume")
	first := flag.Int("first", 0, "index of the first record produced (its offset)")
	codec := flag.String("codec", "none", "none, gzip, snappy or lz4")
	version := flag.String("version", "", "Kafka version to speak; empty keeps Sarama's default")
	fetchBytes := flag.Int("fetch-bytes", 0, "bytes a fetch asks for per partition; 0 keeps Sarama's 1 MiB")
	flag.Parse()

	conf := sarama.NewConfig()
	if *version != "" {
		v, err := sarama.ParseKafkaVersion(*version)
		fail(err)
		conf.Version = v
	}
	if *fetchBytes > 0 {
		conf.Consumer.Fetch.Default = int32(*fetchBytes)
	}
	addrs := []string{*brokers}
	switch *mode {
	case "produce":
		produce(addrs, conf, *topic, *first, *count, *codec)
	case "consume":
		consume(addrs, conf, *topic, *group, *count)
	case "admin":
		admin(addrs, conf, *topic)
	case "dump":
		dump(addrs, conf, *topic)
	default:
		fail(fmt.Errorf("unknown mode %q", *mode))
	}
}

func step(what string, err error) {
	if err != nil {
		fail(fmt.Errorf("%s: %w", what, err))
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func produce(addrs []string, conf *sarama.Config, topic string, first, n int, codec string) {
	codecs := map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4,
	}
	conf.Producer.Compression = codecs[codec]
	conf.Producer.RequiredAcks = sarama.WaitForAll
	conf.Producer.Return.Successes = true
	conf.Producer.Flush.Messages = 50 // several messages per request, so sets are real
	conf.Producer.Flush.Frequency = 5 * time.Millisecond
	producer, err := sarama.NewAsyncProducer(addrs, conf)
	fail(err)
	for i := first; i < first+n; i++ {
		producer.Input() <- &sarama.ProducerMessage{
			Topic: topic, Partition: 0,
			Key:   sarama.StringEncoder(fmt.Sprintf("k-%d", i)),
			Value: sarama.StringEncoder(fmt.Sprintf("v-%d", i)),
		}
	}
	acked := 0
	for acked < n {
		select {
		case <-producer.Successes():
			acked++
		case e := <-producer.Errors():
			fail(e.Err)
		case <-time.After(30 * time.Second):
			fail(fmt.Errorf("only %d of %d acknowledged", acked, n))
		}
	}
	fail(producer.Close())
	fmt.Printf("produced %d\n", acked)
}

// consume reads n records of partition 0 from the group's committed offset (the
// oldest if none), checks each is the next one produced, and commits after them.
func consume(addrs []string, conf *sarama.Config, topic, group string, n int) {
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest
	client, err := sarama.NewClient(addrs, conf)
	fail(err)
	offsets, err := sarama.NewOffsetManagerFromClient(group, client)
	fail(err)
	pom, err := offsets.ManagePartition(topic, 0)
	fail(err)
	start, _ := pom.NextOffset() // OffsetOldest (-2) when the group committed none
	consumer, err := sarama.NewConsumerFromClient(client)
	fail(err)
	pc, err := consumer.ConsumePartition(topic, 0, start)
	fail(err)
	got := 0
	next := start
	for got < n {
		select {
		case m := <-pc.Messages():
			if next < 0 {
				next = m.Offset
			}
			want := fmt.Sprintf("v-%d", m.Offset)
			if m.Offset != next || string(m.Value) != want || string(m.Key) != fmt.Sprintf("k-%d", m.Offset) {
				fail(fmt.Errorf("offset %d (expected %d) value %q", m.Offset, next, m.Value))
			}
			next++
			got++
			pom.MarkOffset(m.Offset+1, "")
		case e := <-pc.Errors():
			fail(e.Err)
		case <-time.After(30 * time.Second):
			fail(fmt.Errorf("only %d of %d consumed", got, n))
		}
	}
	fail(pc.Close())
	fail(pom.Close())
	fail(offsets.Close())
	fail(client.Close())
	fmt.Printf("consumed %d from %d\n", got, start)
}

func admin(addrs []string, conf *sarama.Config, topic string) {
	ca, err := sarama.NewClusterAdmin(addrs, conf)
	fail(err)
	retention := "3600000"
	step("create", ca.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention},
	}, false))
	entries, err := ca.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"},
	})
	step("describe", err)
	if len(entries) != 1 || entries[0].Value != retention || entries[0].Default {
		fail(fmt.Errorf("described %+v", entries))
	}
	step("delete", ca.DeleteTopic(topic))
	fail(ca.Close())
	fmt.Println("admin ok")
}

// dump prints "offset key value" for every record of partition 0 from the oldest to
// the log end as it was at the start ("-" for a tombstone's value), for a test to
// check against what it produced (a compacted topic, R-LOG-18).
func dump(addrs []string, conf *sarama.Config, topic string) {
	client, err := sarama.NewClient(addrs, conf)
	fail(err)
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	fail(err)
	consumer, err := sarama.NewConsumerFromClient(client)
	fail(err)
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	fail(err)
	for last := int64(-1); last+1 < end; {
		select {
		case m := <-pc.Messages():
			value := "-"
			if m.Value != nil {
				value = string(m.Value)
			}
			fmt.Printf("%d %s %s\n", m.Offset, m.Key, value)
			last = m.Offset
		case e := <-pc.Errors():
			fail(e.Err)
		case <-time.After(30 * time.Second):
			fail(fmt.Errorf("no record after offset %d of %d", last, end))
		}
	}
	fail(pc.Close())
	fail(client.Close())
}
