"""confluent-kafka (librdkafka) against Strata's Kafka listener over
SASL_SSL with SCRAM-SHA-256: produce, consume in a group, and a wrong
password refused; then a produce with SASL PLAIN. Run by client/tests/it/kafka_confluent.rs, which starts
the broker, makes the certificates and the user, and reads the JSON this
prints. Settings come from the environment."""

import json
import os
import sys

from confluent_kafka import Consumer, KafkaError, Producer

BOOTSTRAP = os.environ["BOOTSTRAP"]
COMMON = {
    "bootstrap.servers": BOOTSTRAP,
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-256",
    "sasl.username": os.environ["SASL_USER"],
    "ssl.ca.location": os.environ["CA_FILE"],
}
TOPIC = os.environ["TOPIC"]
out = {}

errors = []
producer = Producer(
    {**COMMON, "sasl.password": os.environ["SASL_PASSWORD"], "error_cb": errors.append}
)
delivered = []
for i in range(10):
    producer.produce(
        TOPIC, value=f"v{i}".encode(), key=b"k",
        on_delivery=lambda err, msg: delivered.append(err is None),
    )
left = producer.flush(30)
out["delivered"] = sum(delivered)
out["unflushed"] = left
out["producer_errors"] = [str(e) for e in errors]

consumer = Consumer({
    **COMMON,
    "sasl.password": os.environ["SASL_PASSWORD"],
    "group.id": os.environ["GROUP"],
    "auto.offset.reset": "earliest",
})
consumer.subscribe([TOPIC])
values = []
for _ in range(300):
    if len(values) >= 10:
        break
    m = consumer.poll(0.1)
    if m is not None and m.error() is None:
        values.append(m.value().decode())
consumer.close()
out["consumed"] = values

# A wrong password: the producer reports an authentication error and
# delivers nothing.
bad_errors = []
bad = Producer({
    **COMMON,
    "sasl.password": "wrong",
    "error_cb": bad_errors.append,
    "message.timeout.ms": 3000,
})
bad_delivered = []
bad.produce(TOPIC, value=b"x", on_delivery=lambda err, msg: bad_delivered.append(err is None))
bad.flush(10)
out["bad_delivered"] = sum(bad_delivered)
out["bad_errors"] = [str(e) for e in bad_errors]
out["bad_auth_error"] = any(
    e.code() == KafkaError._AUTHENTICATION for e in bad_errors
)
# PLAIN over the same TLS listener.
plain_delivered = []
plain = Producer({
    **COMMON,
    "sasl.mechanism": "PLAIN",
    "sasl.password": os.environ["PLAIN_PASSWORD"],
})
plain.produce(TOPIC, value=b"plain", on_delivery=lambda err, msg: plain_delivered.append(err is None))
plain.flush(30)
out["plain_delivered"] = sum(plain_delivered)
json.dump(out, sys.stdout)
