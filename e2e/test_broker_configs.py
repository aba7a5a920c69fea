"""Dynamic broker configs (KIP-226, R-WIRE-16) through confluent-kafka's admin
client against the real binary: a broker's level is stored in the replicated
metadata, described with its sources, survives a restart, and the configs that set
a topic default take effect on the topics that do not set their own. (The cluster
level, resource name "", which neither Python client can name, is checked on the
wire: impl/tests/wire.rs r_wire_16_the_cluster_level_sets_topic_defaults.)"""
import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewTopic, ResourceType)

INVALID_CONFIG = 40
NOT_ENOUGH_REPLICAS = 19


def wait_registered(admin):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if admin.list_topics(timeout=5).controller_id >= 0:
                return
        except KafkaException:
            pass
        time.sleep(0.1)
    raise AssertionError("the broker never named a controller")


def describe(admin, kind, name):
    resource = ConfigResource(kind, name)
    return admin.describe_configs([resource], request_timeout=15)[resource].result(15)


def alter(admin, kind, name, *entries):
    resource = ConfigResource(kind, name, incremental_configs=list(entries))
    return admin.incremental_alter_configs([resource])[resource].result(15)


def set_(name, value):
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def delete(name):
    return ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)


def produce_error(bootstrap, topic, key=b"k"):
    """The error of one acks=all produce, None on success."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": 3000, "retries": 0})
    producer.produce(topic, b"v", key=key, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert len(errors) == 1, errors
    return errors[0]


def test_r_wire_16_dynamic_broker_configs_are_stored_described_and_enforced(broker_factory):
    broker = broker_factory()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wait_registered(admin)
    topics = [NewTopic("plain", 1, 1), NewTopic("own", 1, 1, config={"min.insync.replicas": "1"})]
    for f in admin.create_topics(topics).values():
        f.result(15)
    me = str(next(iter(admin.list_topics(timeout=10).brokers)))

    # A topic default for this broker: min.insync.replicas=2 cannot be met by one
    # node, so acks=all produces to topics without their own value are refused.
    alter(admin, ResourceType.BROKER, me, set_("min.insync.replicas", "2"),
          set_("log.retention.hours", "48"),
          set_("sasl.kerberos.min.time.before.relogin", "58000"),
          ConfigEntry("log.cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert produce_error(broker.bootstrap, "plain").code() == NOT_ENOUGH_REPLICAS
    assert produce_error(broker.bootstrap, "own") is None
    # log.cleanup.policy=delete,compact holds too: a compacted topic refuses keyless records.
    assert produce_error(broker.bootstrap, "own", key=None).code() == 87  # INVALID_RECORD

    described = describe(admin, ResourceType.TOPIC, "plain")
    assert described["min.insync.replicas"].value == "2"
    assert described["min.insync.replicas"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert described["retention.ms"].value == str(48 * 3600 * 1000)
    assert "log.retention.hours" in described["retention.ms"].synonyms
    mine = describe(admin, ResourceType.BROKER, me)
    assert mine["min.insync.replicas"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert mine["log.cleanup.policy"].value == "delete,compact"
    assert mine["broker.id"].is_read_only and mine["broker.id"].value == me
    assert mine["background.threads"].source == ConfigSource.DEFAULT_CONFIG.value
    alter(admin, ResourceType.BROKER, me, delete("log.cleanup.policy"))

    # Refusals, as Kafka's DynamicBrokerConfig answers them; nothing is stored.
    for entry in [set_("broker.id", "7"), set_("log.segment.bytes", "12"),
                  set_("no.such.config", "1"), set_("background.threads", "zero")]:
        with pytest.raises(KafkaException) as e:
            alter(admin, ResourceType.BROKER, me, entry)
        assert e.value.args[0].code() == INVALID_CONFIG, (entry.name, e.value)
    assert describe(admin, ResourceType.BROKER, me)["background.threads"].value == "10"

    # The level is replicated metadata: a restart keeps it.
    broker.stop()
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wait_registered(admin)
    assert describe(admin, ResourceType.BROKER, me)["min.insync.replicas"].value == "2"
    assert produce_error(broker.bootstrap, "plain").code() == NOT_ENOUGH_REPLICAS
    alter(admin, ResourceType.BROKER, me, delete("min.insync.replicas"))
    assert produce_error(broker.bootstrap, "plain") is None
