#!/usr/bin/env python3
"""A stand-in for Kafka's bin/kafka-topics.sh for librdkafka's tests
(scripts/librdkafka-suite sets KAFKA_PATH to the directory above this one): the
--create, --alter --partitions and --delete forms those tests run, done with the Admin
API through confluent-kafka, so a test that makes its topics with Kafka's tool runs
without a Kafka distribution. Exits non-zero with the broker's error, as the tool does."""
import argparse
import sys

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--create", action="store_true")
    p.add_argument("--alter", action="store_true")
    p.add_argument("--delete", action="store_true")
    p.add_argument("--partitions", type=int)
    p.add_argument("--replication-factor", type=int, default=-1)
    p.add_argument("--config", action="append", default=[])
    a = p.parse_args()
    admin = AdminClient({"bootstrap.servers": a.bootstrap_server})
    if a.create:
        configs = dict(c.split("=", 1) for c in a.config)
        topic = NewTopic(a.topic, a.partitions or -1, a.replication_factor, config=configs)
        futures = admin.create_topics([topic], operation_timeout=30)
    elif a.alter and a.partitions:
        futures = admin.create_partitions([NewPartitions(a.topic, a.partitions)])
    elif a.delete:
        futures = admin.delete_topics([a.topic], operation_timeout=30)
    else:
        sys.exit(f"kafka-topics.sh stand-in: unsupported arguments {sys.argv[1:]}")
    for future in futures.values():
        future.result(30)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the tool's exit status is the contract
        sys.exit(f"kafka-topics.sh stand-in: {e}")
