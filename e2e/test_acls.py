"""ACLs with kafka-python's admin client (spec/security.md, R-SEC-ACL-*): create,
describe and delete ACLs against the real binary, see them enforced on a producer and
survive a restart. Every client is User:ANONYMOUS until SASL lands, so enforcement is
shown with a DENY for it and `--allow-everyone-if-no-acl-found` for the rest."""
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

from conftest import Broker

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


def produce(bootstrap, topic):
    producer = KafkaProducer(bootstrap_servers=bootstrap, retries=0, max_block_ms=10000)
    try:
        return producer.send(topic, b"v").get(timeout=10)
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
