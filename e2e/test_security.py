"""Security as clients meet it (spec/security.md): one broker with a PLAINTEXT,
an SSL (client certificates requested), a SASL_PLAINTEXT and a SASL_SSL listener;
certificates made by the openssl command; the first admin user created with
`chronik add-scram-user` before the broker starts. kafka-python, confluent-kafka
and kcat produce, consume in a group and administer over each protocol and
mechanism; wrong credentials, skipped handshakes and garbage are refused."""
import re
import socket
import ssl
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from conftest import BINARY, Broker, frame, free_port, kafka_string, read_frame

ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory, server_cn="localhost"):
    """A CA, a server certificate for 127.0.0.1, and a client certificate."""
    directory.mkdir(exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=chronik-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)
    # X.509 v3 (extensions) throughout: rustls refuses v1 certificates.
    (directory / "server.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (directory / "client.cnf").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name, subject in [("server", f"/CN={server_cn}"), ("client", "/C=US/O=Chronik/CN=writer")]:
        extra = ["-extfile", f"{name}.cnf"]
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra, cwd=directory)
    keystore = directory / "server-keystore.pem"
    keystore.write_text((directory / "server.key").read_text() + (directory / "server.pem").read_text())
    return directory


class SecureBroker(Broker):
    def __init__(self, data_dir, certs, extra=()):
        self.ports = {name: free_port() for name in ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]}
        listeners = ",".join(f"{n}://127.0.0.1:{p}" for n, p in self.ports.items())
        super().__init__(data_dir, port=self.ports["PLAINTEXT"], extra_args=[
            "--listeners", listeners,
            "--ssl-keystore-location", str(certs / "server-keystore.pem"),
            "--ssl-truststore-location", str(certs / "ca.pem"),
            "--ssl-client-auth", "requested", *extra])

    def address(self, listener):
        return f"127.0.0.1:{self.ports[listener]}"


def add_user(data_dir, user, password):
    subprocess.run([str(BINARY), "--data-dir", str(data_dir), "add-scram-user", "--user", user],
                   input=password + "\n", text=True, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure(tmp_path_factory, certs):
    data = tmp_path_factory.mktemp("secure") / "data"
    add_user(data, ADMIN, ADMIN_PASSWORD)
    broker = SecureBroker(data, certs).start()
    try:
        wait_for_user(broker, ADMIN, ADMIN_PASSWORD)
        yield broker
    finally:
        broker.stop()


def confluent_config(broker, listener, certs, mechanism=None, user=ADMIN, password=ADMIN_PASSWORD):
    config = {"bootstrap.servers": broker.address(listener), "security.protocol": listener}
    if "SSL" in listener:
        config["ssl.ca.location"] = str(certs / "ca.pem")
    if "SASL" in listener:
        config.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    return config


def kafka_python_config(broker, listener, certs, mechanism=None, user=ADMIN, password=ADMIN_PASSWORD):
    config = {"bootstrap_servers": broker.address(listener), "security_protocol": listener}
    if "SSL" in listener:
        config["ssl_cafile"] = str(certs / "ca.pem")
    if "SASL" in listener:
        config.update({"sasl_mechanism": mechanism, "sasl_plain_username": user,
                       "sasl_plain_password": password})
    return config


def wait_for_user(broker, user, password, timeout=15):
    """The bootstrap credential is applied in the background after start-up."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sasl_plain_handshake(broker.ports["SASL_PLAINTEXT"], user, password)[0] == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{user} could not authenticate within {timeout}s")


# --- the wire, by hand: SaslHandshake v1 and SaslAuthenticate v1 -----------------

def authenticate_v1(sock, token):
    sock.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
    body = read_frame(sock)[4:]
    error = struct.unpack(">h", body[:2])[0]
    message_len = struct.unpack(">h", body[2:4])[0]
    rest = body[4 + max(message_len, 0):]
    token_len = struct.unpack(">i", rest[:4])[0]
    lifetime = struct.unpack(">q", rest[4 + token_len:12 + token_len])[0]
    return error, lifetime


def sasl_plain_handshake(port, user, password, keep=False):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(frame(17, 1, 1, kafka_string("PLAIN")))
    handshake = read_frame(sock)
    assert struct.unpack(">h", handshake[4:6])[0] == 0
    error, lifetime = authenticate_v1(sock, f"\0{user}\0{password}".encode())
    if keep:
        return error, lifetime, sock
    sock.close()
    return error, lifetime


def closed_by_broker(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def metadata_request(correlation_id=9):
    return frame(3, 1, correlation_id, struct.pack(">i", -1))


# --- produce and consume through real clients ------------------------------------

def confluent_round_trip(config, topic, count=20):
    producer = Producer(config)
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(20) == 0
    consumer = Consumer({**config, "group.id": f"g-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = []
    deadline = time.time() + 30
    while len(seen) < count and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append(message.value())
    consumer.close()
    assert sorted(seen) == sorted(f"v{i}".encode() for i in range(count))


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_r_sec_2_confluent_kafka_over_sasl_ssl(secure, certs, mechanism):
    config = confluent_config(secure, "SASL_SSL", certs, mechanism)
    confluent_round_trip(config, f"sasl-ssl-{mechanism.lower()}")


@pytest.mark.parametrize("listener,mechanism", [("SASL_PLAINTEXT", m) for m in MECHANISMS]
                         + [("SASL_SSL", "SCRAM-SHA-256"), ("SSL", None)])
def test_r_sec_2_kafka_python_over_sasl_and_ssl(secure, certs, listener, mechanism):
    config = kafka_python_config(secure, listener, certs, mechanism)
    topic = f"kp-{listener.lower()}-{(mechanism or 'none').lower()}"
    admin = KafkaAdminClient(**config)
    admin.create_topics([__import__("kafka").admin.NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(acks="all", **config)
    for i in range(10):
        producer.send(topic, f"m{i}".encode())
    producer.flush(20)
    producer.close()
    consumer = KafkaConsumer(topic, group_id=f"g-{listener}-{mechanism}", auto_offset_reset="earliest",
                             consumer_timeout_ms=15000, **config)
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == 10:
            break
    consumer.close()
    assert sorted(values) == sorted(f"m{i}".encode() for i in range(10))


def test_r_sec_6_confluent_kafka_over_ssl_with_and_without_a_client_certificate(secure, certs):
    config = confluent_config(secure, "SSL", certs)
    confluent_round_trip(config, "ssl-anonymous")
    with_certificate = {**config, "ssl.certificate.location": str(certs / "client.pem"),
                        "ssl.key.location": str(certs / "client.key")}
    confluent_round_trip(with_certificate, "ssl-client-cert")


def test_r_sec_7_metadata_names_the_listener_the_client_came_in_on(secure, certs):
    for listener in ["SASL_SSL", "SSL", "PLAINTEXT"]:
        mechanism = "SCRAM-SHA-512" if "SASL" in listener else None
        admin = AdminClient(confluent_config(secure, listener, certs, mechanism))
        brokers = admin.list_topics(timeout=10).brokers
        assert [b.port for b in brokers.values()] == [secure.ports[listener]], listener


def test_r_sec_2_kcat_lists_metadata_over_sasl_ssl(secure, certs):
    result = subprocess.run(
        ["kcat", "-L", "-b", secure.address("SASL_SSL"), "-X", "security.protocol=SASL_SSL",
         "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", f"sasl.username={ADMIN}",
         "-X", f"sasl.password={ADMIN_PASSWORD}", "-X", f"ssl.ca.location={certs / 'ca.pem'}",
         "-m", "10"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{secure.ports['SASL_SSL']}" in result.stdout


# --- refusals ------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_r_sec_2_wrong_password_and_unknown_user_are_refused(secure, certs, mechanism):
    for user, password in [(ADMIN, "wrong"), ("mallory", ADMIN_PASSWORD)]:
        config = confluent_config(secure, "SASL_SSL", certs, mechanism, user, password)
        admin = AdminClient(config)
        with pytest.raises(KafkaException) as refused:
            admin.list_topics(timeout=5)
        assert "uthentication" in str(refused.value) or "_TRANSPORT" in str(refused.value) \
            or "timed out" in str(refused.value).lower()
    error, _ = sasl_plain_handshake(secure.ports["SASL_PLAINTEXT"], ADMIN, "wrong")
    assert error == 58  # SASL_AUTHENTICATION_FAILED


def test_r_sec_1_requests_before_authentication_close_the_connection(secure):
    sock = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5)
    sock.sendall(metadata_request())
    assert closed_by_broker(sock)
    # A token before any handshake is not an exchange either.
    sock = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5)
    sock.sendall(frame(36, 1, 1, struct.pack(">i", 5) + b"hello"))
    body = read_frame(sock)[4:]
    assert struct.unpack(">h", body[:2])[0] == 58
    assert closed_by_broker(sock)
    # Before the login a frame may not exceed sasl.server.max.receive.size (512 KiB):
    # announcing 10 MB closes the connection before a byte of it is taken in.
    sock = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5)
    sock.sendall(struct.pack(">i", 10_000_000))
    assert closed_by_broker(sock)


def test_r_sec_2_garbage_in_sasl_authenticate_is_refused_and_touches_nothing(secure):
    for mechanism in ["SCRAM-SHA-256", "PLAIN"]:
        sock = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5)
        sock.sendall(frame(17, 1, 1, kafka_string(mechanism)))
        read_frame(sock)
        error, _ = authenticate_v1(sock, b"\xff\x00garbage,,=\x00")
        assert error == 58
        assert closed_by_broker(sock)
    # The broker still serves its users.
    assert sasl_plain_handshake(secure.ports["SASL_PLAINTEXT"], ADMIN, ADMIN_PASSWORD)[0] == 0


def test_r_sec_1_a_plaintext_client_on_a_tls_listener_is_not_served(secure):
    sock = socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=10)
    sock.sendall(metadata_request())
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    # At most a TLS alert record (content type 21), never a Kafka answer.
    assert received == b"" or received[0] == 21, received


# --- credentials through the Kafka API, and across a restart -------------------------

def test_r_sec_3_scram_users_are_managed_through_the_kafka_api_and_survive_a_restart(
        tmp_path, certs):
    data = tmp_path / "data"
    add_user(data, ADMIN, ADMIN_PASSWORD)
    broker = SecureBroker(data, certs).start()
    try:
        wait_for_user(broker, ADMIN, ADMIN_PASSWORD)
        admin = AdminClient(confluent_config(broker, "SASL_SSL", certs, "SCRAM-SHA-256"))
        upsert = UserScramCredentialUpsertion(
            "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"carol-pw", b"salt-of-carol")
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(10)
        described = admin.describe_user_scram_credentials(["carol"])["carol"].result(10)
        [info] = described.scram_credential_infos
        assert (info.mechanism, info.iterations) == (ScramMechanism.SCRAM_SHA_512, 8192)
        carol = confluent_config(broker, "SASL_SSL", certs, "SCRAM-SHA-512", "carol", "carol-pw")
        confluent_round_trip(carol, "carol-topic", count=5)
        # The password is nowhere on disk.
        for path in data.rglob("*"):
            if path.is_file():
                assert b"carol-pw" not in path.read_bytes(), path
        broker.stop()
        broker.start()
        wait_for_user(broker, ADMIN, ADMIN_PASSWORD)
        confluent_round_trip(carol, "carol-after-restart", count=5)
        admin = AdminClient(confluent_config(broker, "SASL_SSL", certs, "SCRAM-SHA-256"))
        deletion = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512)
        for future in admin.alter_user_scram_credentials([deletion]).values():
            future.result(10)
        with pytest.raises(KafkaException):
            AdminClient(carol).list_topics(timeout=5)
    finally:
        broker.stop()


# --- re-authentication and certificate reload ----------------------------------------

def test_r_sec_4_an_expired_session_serves_nothing_until_it_reauthenticates(tmp_path, certs):
    data = tmp_path / "data"
    add_user(data, ADMIN, ADMIN_PASSWORD)
    broker = SecureBroker(data, certs, extra=["--connections-max-reauth-ms", "1500"]).start()
    try:
        wait_for_user(broker, ADMIN, ADMIN_PASSWORD)
        error, lifetime, sock = sasl_plain_handshake(
            broker.ports["SASL_PLAINTEXT"], ADMIN, ADMIN_PASSWORD, keep=True)
        assert (error, lifetime) == (0, 1500)
        sock.sendall(metadata_request())
        assert read_frame(sock)
        time.sleep(2)
        sock.sendall(metadata_request(10))
        assert closed_by_broker(sock)
        # librdkafka re-authenticates on its own (KIP-368) and keeps working.
        config = confluent_config(broker, "SASL_SSL", certs, "SCRAM-SHA-256")
        producer = Producer(config)
        for i in range(4):
            producer.produce("reauth", value=b"x")
            assert producer.flush(10) == 0
            time.sleep(1)
    finally:
        broker.stop()


def test_r_sec_6_a_renewed_certificate_is_served_without_a_restart(tmp_path, certs):
    data = tmp_path / "data"
    mine = tmp_path / "certs"
    mine.mkdir()
    for name in ["ca.pem", "server-keystore.pem"]:
        (mine / name).write_bytes((certs / name).read_bytes())
    broker = SecureBroker(data, mine).start()
    try:
        before = ssl.get_server_certificate(("127.0.0.1", broker.ports["SSL"]))
        renewed = make_certificates(tmp_path / "renewed", server_cn="renewed.localhost")
        (mine / "server-keystore.pem").write_bytes((renewed / "server-keystore.pem").read_bytes())
        deadline = time.time() + 10
        after = before
        while after == before and time.time() < deadline:
            time.sleep(0.5)
            after = ssl.get_server_certificate(("127.0.0.1", broker.ports["SSL"]))
        assert after != before
        assert after.strip() == (renewed / "server.pem").read_text().strip()
    finally:
        broker.stop()


# --- a secured three-node cluster --------------------------------------------------

def test_r_sec_9_a_cluster_replicates_over_sasl_ssl_with_authenticated_peers(tmp_path, certs):
    """Every Kafka listener is SASL_SSL, replicas fetch as the SCRAM user `broker`
    over the inter-broker listener, peers prove the cluster secret: the README's
    secured cluster. acks=all records reach all three replicas and read back."""
    from conftest import Cluster
    secret = tmp_path / "peer-secret"
    secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    broker_password = tmp_path / "broker-password"
    broker_password.write_text("broker-secret\n")
    cluster = Cluster(tmp_path / "cluster", n=3)
    for node in cluster.nodes:
        client_port, broker_port = node.port, free_port()
        config = node.data_dir.parent / f"{node.data_dir.name}.toml"
        node.data_dir.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"""
listeners = "BROKER://127.0.0.1:{broker_port},CLIENT://127.0.0.1:{client_port}"
listener_security_protocol_map = "BROKER:SASL_SSL,CLIENT:SASL_SSL"
inter_broker_listener_name = "BROKER"
ssl_keystore_location = "{certs / 'server-keystore.pem'}"
ssl_truststore_location = "{certs / 'ca.pem'}"
inter_broker_sasl_username = "broker"
inter_broker_sasl_password_file = "{broker_password}"
peer_secret_file = "{secret}"
""")
        node.extra_args = ["--config", str(config), *node.extra_args]
    add_user(cluster.node(1).data_dir, ADMIN, ADMIN_PASSWORD)
    add_user(cluster.node(1).data_dir, "broker", "broker-secret")
    try:
        for node in cluster.nodes:
            node.start()
        bootstrap = ",".join(n.bootstrap for n in cluster.nodes)
        config = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL",
                  "ssl.ca.location": str(certs / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
                  "sasl.username": ADMIN, "sasl.password": ADMIN_PASSWORD}
        deadline = time.time() + 30
        while True:
            try:
                admin = AdminClient(config)
                if len(admin.list_topics(timeout=5).brokers) == 3:
                    break
            except KafkaException:
                pass
            assert time.time() < deadline, "the secured cluster did not come up"
            time.sleep(0.5)
        for future in admin.create_topics([NewTopic("secured", 1, 3)]).values():
            future.result(20)
        producer = Producer({**config, "acks": "all"})
        for i in range(100):
            producer.produce("secured", value=f"r{i}".encode())
        assert producer.flush(30) == 0
        # Followers that could not fetch would leave the ISR after
        # replica_lag_time_max_ms (2 s); the leader's death would then lose records.
        time.sleep(3)
        partition = admin.list_topics("secured", timeout=5).topics["secured"].partitions[0]
        assert sorted(partition.isrs) == [1, 2, 3]
        # The partition's leader goes, and with it the controller if it is the same
        # node; otherwise the controller goes next (a majority stays up either way
        # only if one node dies: so the leader's death is the one failover, and the
        # controller's is checked by the user created after it below).
        victim = partition.leader
        cluster.node(victim).kill9()
        config["bootstrap.servers"] = cluster.bootstrap
        admin = AdminClient(config)
        # Credentials still work, and change, through whichever node now leads the
        # metadata group.
        upsert = UserScramCredentialUpsertion(
            "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"dave-pw", b"salt-of-dave")
        deadline = time.time() + 30
        while True:
            try:
                for future in admin.alter_user_scram_credentials([upsert]).values():
                    future.result(30)
                break
            except (KafkaException, TimeoutError):
                assert time.time() < deadline, "no credential change after the failover"
                time.sleep(0.5)
        dave = {**config, "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "dave",
                "sasl.password": "dave-pw"}
        assert "secured" in AdminClient(dave).list_topics(timeout=10).topics
        consumer = Consumer({**config, "group.id": "secured-g", "auto.offset.reset": "earliest"})
        consumer.subscribe(["secured"])
        seen = set()
        deadline = time.time() + 30
        while len(seen) < 100 and time.time() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.add(message.value())
        consumer.close()
        assert seen == {f"r{i}".encode() for i in range(100)}
        for node in cluster.nodes:
            log = node.log_path.read_text(errors="replace")
            assert "peer connection refused" not in log, node.log_path
            # (The CLIENT listener refused the admin until its credential was applied.)
            assert not re.search(r"authentication failed.*BROKER", log), node.log_path
    finally:
        cluster.stop()


# --- SASL principals meet the ACLs ------------------------------------------------------

def test_r_sec_acl_15_sasl_principals_are_what_the_acls_see(tmp_path, certs):
    """The authorizer on, `admin` a super user, `carol` allowed to write one topic:
    her SCRAM login is the principal every check reads."""
    from confluent_kafka import KafkaError as ConfluentError
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)
    data = tmp_path / "data"
    add_user(data, ADMIN, ADMIN_PASSWORD)
    add_user(data, "carol", "carol-pw")
    broker = SecureBroker(data, certs, extra=["--authorizer-enabled", "--super-users", f"User:{ADMIN}"]).start()
    try:
        wait_for_user(broker, ADMIN, ADMIN_PASSWORD)
        wait_for_user(broker, "carol", "carol-pw")
        admin = AdminClient(confluent_config(broker, "SASL_SSL", certs, "SCRAM-SHA-256"))
        for future in admin.create_topics([NewTopic("open", 1, 1), NewTopic("closed", 1, 1)]).values():
            future.result(10)
        grant = AclBinding(ResourceType.TOPIC, "open", ResourcePatternType.LITERAL, "User:carol", "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        for future in admin.create_acls([grant]).values():
            future.result(10)
        carol = confluent_config(broker, "SASL_SSL", certs, "SCRAM-SHA-512", "carol", "carol-pw")
        outcomes = {}
        producer = Producer({**carol, "message.timeout.ms": 10000})
        for topic in ["open", "closed"]:
            producer.produce(topic, value=b"x",
                             on_delivery=lambda err, msg, t=topic: outcomes.setdefault(t, err))
        producer.flush(15)
        assert outcomes["open"] is None
        assert outcomes["closed"] is not None
        assert outcomes["closed"].code() == ConfluentError.TOPIC_AUTHORIZATION_FAILED
        # Listing topics shows carol only what she may describe (Write implies Describe).
        assert set(AdminClient(carol).list_topics(timeout=10).topics) == {"open"}
        assert {"open", "closed"} <= set(admin.list_topics(timeout=10).topics)
    finally:
        broker.stop()


def test_r_ops_3_failed_logins_are_logged_once_a_while_not_per_attempt(secure):
    """A password guesser must not be able to fill the disk with log lines."""
    def failure_lines():
        return secure.log_path.read_text(errors="replace").count("authentication failed")
    before = failure_lines()
    for _ in range(30):
        assert sasl_plain_handshake(secure.ports["SASL_PLAINTEXT"], ADMIN, "guess")[0] == 58
    assert failure_lines() - before <= 1
