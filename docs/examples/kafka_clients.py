#!/usr/bin/env python3
"""Kafka's own Python clients against Strata's Kafka listener: confluent-kafka
(librdkafka) and kafka-python, each as producer, consumer group and admin.

    pip install confluent-kafka kafka-python
    python3 kafka_clients.py 127.0.0.1:9092

Exits non-zero on the first thing that does not work."""

import sys
import time
import uuid

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
N = 1000


def confluent():
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    topic, group = f"ck-{uuid.uuid4().hex[:8]}", f"ck-group-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "3600000"})]).values():
        f.result()
    described = admin.describe_configs([ConfigResource("topic", topic)])
    config = list(described.values())[0].result()
    assert config["retention.ms"].value == "3600000", config["retention.ms"]
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "compression.type": "zstd"})
    acked = []
    for i in range(N):
        p.produce(topic, key=str(i), value=f"v{i}", headers=[("n", str(i).encode())],
                  on_delivery=lambda err, msg: acked.append(err))
    p.flush(30)
    assert len(acked) == N and not any(acked), acked[:3]
    seen = set()
    consumers = [Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest",
                           "enable.auto.commit": False}) for _ in range(2)]
    for c in consumers:
        c.subscribe([topic])
    deadline = time.time() + 60
    while len(seen) < N and time.time() < deadline:
        for c in consumers:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                seen.add(m.value().decode())
                c.commit(message=m, asynchronous=False)
    assert len(seen) == N, f"consumed {len(seen)} of {N}"
    committed = consumers[0].committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    assert sum(tp.offset for tp in committed) == N, committed
    for c in consumers:
        c.close()
    for f in admin.create_partitions([NewPartitions(topic, 5)]).values():
        f.result()
    groups = admin.list_consumer_groups().result()
    assert any(g.group_id == group for g in groups.valid), groups
    for f in admin.delete_consumer_groups([group]).values():
        f.result()
    for f in admin.delete_topics([topic]).values():
        f.result()
    ck = __import__('confluent_kafka')
    print(f"confluent-kafka {ck.__version__} (librdkafka {ck.libversion()[0]}): produced, consumed in a group of 2, "
          f"committed, grew, listed and deleted: ok")


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    topic, group = f"kp-{uuid.uuid4().hex[:8]}", f"kp-group-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", compression_type="gzip")
    futures = [p.send(topic, key=str(i).encode(), value=f"v{i}".encode()) for i in range(N)]
    p.flush()
    assert all(f.get(timeout=30) for f in futures)
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=10000)
    seen = set()
    for m in c:
        seen.add(m.value)
        if len(seen) == N:
            break
    assert len(seen) == N, f"consumed {len(seen)} of {N}"
    c.commit()
    c.close()
    offsets = admin.list_group_offsets(group)[group]
    assert sum(o.offset for o in offsets.values()) == N, offsets
    assert any(g["group_id"] == group for g in admin.list_groups())
    admin.delete_topics([topic])
    print(f"kafka-python {__import__('kafka').__version__}: produced (gzip), consumed in a group, committed, "
          f"listed and deleted: ok")


confluent()
kafka_python()
