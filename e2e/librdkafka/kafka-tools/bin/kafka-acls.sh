#!/usr/bin/env python3
"""A stand-in for Kafka's bin/kafka-acls.sh for librdkafka's tests (see kafka-topics.sh
beside it): the --add and --remove forms those tests run, for a topic, a group or the
cluster, done with CreateAcls and DeleteAcls through confluent-kafka. Exits non-zero
with the broker's error, as the tool does."""
import argparse
import sys

from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--add", action="store_true")
    p.add_argument("--remove", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--allow-principal", action="append", default=[])
    p.add_argument("--deny-principal", action="append", default=[])
    p.add_argument("--allow-host", action="append", default=[])
    p.add_argument("--deny-host", action="append", default=[])
    p.add_argument("--operation", action="append", default=[])
    p.add_argument("--topic")
    p.add_argument("--group")
    p.add_argument("--cluster", action="store_true")
    a = p.parse_args()
    if a.topic:
        resource = (ResourceType.TOPIC, a.topic)
    elif a.group:
        resource = (ResourceType.GROUP, a.group)
    elif a.cluster:
        resource = (ResourceType.BROKER, "kafka-cluster")
    else:
        sys.exit("kafka-acls.sh stand-in: name a --topic, --group or --cluster")
    entries = [(pr, h, AclPermissionType.ALLOW) for pr in a.allow_principal
               for h in (a.allow_host or ["*"])]
    entries += [(pr, h, AclPermissionType.DENY) for pr in a.deny_principal
                for h in (a.deny_host or ["*"])]
    operations = [getattr(AclOperation, op.upper().replace("-", "_")) for op in a.operation or ["All"]]
    kind = AclBinding if a.add else AclBindingFilter
    bindings = [kind(resource[0], resource[1], ResourcePatternType.LITERAL, principal, host, op,
                     permission)
                for principal, host, permission in entries for op in operations]
    admin = AdminClient({"bootstrap.servers": a.bootstrap_server})
    if a.add:
        futures = admin.create_acls(bindings)
    elif a.remove:
        futures = admin.delete_acls(bindings)
    else:
        sys.exit("kafka-acls.sh stand-in: --add or --remove")
    for future in futures.values():
        future.result(30)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the tool's exit status is the contract
        sys.exit(f"kafka-acls.sh stand-in: {e}")
