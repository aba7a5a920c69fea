"""ACLs with kafka-python's admin client (spec/security.md, R-SEC-ACL-*): create,
describe and delete ACLs against the real binary, see them enforced on a producer and
survive a restart. Every client is User:ANONYMOUS until SASL lands, so enforcement is
shown with a DENY for it and `--allow-everyone-if-no-acl-found` for the rest."""
import time

import pytest
from kafka import KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import NoError, TopicAuthorizationFailedError

from conftest import Broker, Cluster

ANONYMOUS = "User:ANONYMOUS"


def deny_write(topic):
    return ACL(
        principal=ANONYMOUS,
        host="*",
        operation=ACLOperation.WRITE,
        permission_type=ACLPermissionType.DENY,
        resource_pattern=ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL),
    )


def topic_acls():
    return ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.ANY),
    )


def produce(bootstrap, topic, partition=None):
    producer = KafkaProducer(bootstrap_servers=bootstrap, retries=0, max_block_ms=10000, acks="all")
    try:
        return producer.send(topic, b"v", partition=partition).get(timeout=10)
    finally:
        producer.close()


@pytest.fixture
def open_broker(tmp_path):
    b = Broker(tmp_path / "data", extra_args=["--authorizer-enabled", "--allow-everyone-if-no-acl-found"]).start()
    try:
        yield b
    finally:
        b.stop()


def test_r_sec_acl_12_kafka_python_manages_acls_and_they_are_enforced(open_broker):
    admin = KafkaAdminClient(bootstrap_servers=open_broker.bootstrap)
    try:
        admin.create_topics([NewTopic("open", 1, 1), NewTopic("locked", 1, 1)])
        created = admin.create_acls([deny_write("locked")])
        assert len(created["succeeded"]) == 1 and not created["failed"], created
        acls, error = admin.describe_acls(topic_acls())
        assert error is NoError
        assert [(a.resource_pattern.resource_name, a.operation, a.permission_type) for a in acls] == [
            ("locked", ACLOperation.WRITE, ACLPermissionType.DENY)
        ]
    finally:
        admin.close()
    assert produce(open_broker.bootstrap, "open").offset == 0
    with pytest.raises(TopicAuthorizationFailedError):
        produce(open_broker.bootstrap, "locked")

    # R-SEC-ACL-11: the ACL is in the replicated metadata and outlives the process.
    open_broker.stop()
    open_broker.start()
    with pytest.raises(TopicAuthorizationFailedError):
        produce(open_broker.bootstrap, "locked")
    admin = KafkaAdminClient(bootstrap_servers=open_broker.bootstrap)
    try:
        [(_, deleted, error)] = admin.delete_acls([topic_acls()])
        assert error is NoError and len(deleted) == 1
        acls, _ = admin.describe_acls(topic_acls())
        assert acls == []
    finally:
        admin.close()
    assert produce(open_broker.bootstrap, "locked").offset == 0


def test_r_sec_acl_6_a_super_user_ignores_denials(tmp_path):
    b = Broker(tmp_path / "data", extra_args=["--authorizer-enabled", "--super-users", ANONYMOUS]).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            admin.create_topics([NewTopic("t", 1, 1)])
            everything = ACL(
                principal="User:*",
                host="*",
                operation=ACLOperation.ALL,
                permission_type=ACLPermissionType.DENY,
                resource_pattern=ResourcePattern(ResourceType.TOPIC, "*", ACLResourcePatternType.LITERAL),
            )
            assert not admin.create_acls([everything])["failed"]
        finally:
            admin.close()
        assert produce(b.bootstrap, "t").offset == 0
    finally:
        b.stop()


def test_r_sec_acl_11_a_cluster_shares_its_acls_and_followers_still_replicate(tmp_path):
    """ACLs created through any node hold on every leader; acks=all on three replicas
    shows followers' fetches pass the authorizer (no ACL covers the cluster here)."""
    cluster = Cluster(tmp_path, extra_args=["--authorizer-enabled", "--allow-everyone-if-no-acl-found"])
    try:
        for n in cluster.nodes:
            n.start()
        deadline = time.time() + 15
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=5000)
                if len(admin.describe_cluster()["brokers"]) == 3:
                    break
                admin.close()
            except Exception:  # noqa: BLE001 - nodes still starting
                pass
            assert time.time() < deadline, "3 brokers not listed in time"
            time.sleep(0.1)
        try:
            admin.create_topics([NewTopic("open", 3, 3), NewTopic("locked", 3, 3)])
            assert not admin.create_acls([deny_write("locked")])["failed"]
        finally:
            admin.close()
        deadline = time.time() + 15
        while True:
            try:
                produce(cluster.bootstrap, "open")
                break
            except Exception:  # noqa: BLE001 - leaders still being elected
                assert time.time() < deadline, "acks=all produce to 3 replicas failed"
                time.sleep(0.2)
        # Each partition has its own leader; each applies the ACL from the metadata.
        for partition in range(3):
            deadline = time.time() + 5
            while True:
                try:
                    produce(cluster.bootstrap, "locked", partition)
                except TopicAuthorizationFailedError:
                    break
                except Exception:  # noqa: BLE001 - a leader still being elected
                    pass
                assert time.time() < deadline, f"partition {partition} of locked still writable"
                time.sleep(0.1)
    finally:
        cluster.stop()
