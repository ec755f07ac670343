"""Produce and consume with Strata from Python, using only grpcio.

No knowledge of the record batch format is needed: records go in as
structured `Record` messages and come back decoded (`decode=True`).

    python -m venv .venv && .venv/bin/pip install grpcio grpcio-tools
    .venv/bin/python -m grpc_tools.protoc -I ../../proto/proto \
        --python_out=. --grpc_python_out=. strata/v1/strata.proto
    .venv/bin/python produce_consume.py 127.0.0.1:7390
"""

import sys

import grpc

from strata.v1 import strata_pb2 as pb
from strata.v1 import strata_pb2_grpc as rpc


def main(addr: str) -> None:
    channel = grpc.insecure_channel(addr)
    admin = rpc.AdminStub(channel)
    records = rpc.RecordsStub(channel)

    try:
        admin.CreateTopic(pb.CreateTopicRequest(name="py-demo", partitions=1))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise

    produced = records.Produce(
        pb.ProduceRequest(
            acks=pb.ACKS_DURABLE,
            topics=[
                pb.TopicProduceData(
                    topic="py-demo",
                    partitions=[
                        pb.PartitionProduceData(
                            partition=0,
                            records=pb.RecordList(
                                records=[
                                    pb.Record(
                                        key=b"user-1",
                                        value=b"hello",
                                        headers=[pb.Header(key="source", value=b"python")],
                                    ),
                                    pb.Record(key=b"user-2", value=b"world"),
                                ]
                            ),
                        )
                    ],
                )
            ],
        )
    )
    result = produced.topics[0].partitions[0]
    if result.HasField("error"):
        raise SystemExit(f"produce failed: {result.error.message}")
    print(f"produced at offset {result.base_offset}")

    fetched = records.Fetch(
        pb.FetchRequest(
            topics=[
                pb.FetchTopic(
                    topic="py-demo",
                    partitions=[pb.FetchPartition(partition=0, offset=result.base_offset)],
                )
            ],
            max_wait_ms=1000,
            min_bytes=1,
            decode=True,
        )
    )
    for r in fetched.topics[0].partitions[0].records:
        headers = {h.key: h.value for h in r.headers}
        print(f"offset {r.offset}: key={r.key!r} value={r.value!r} headers={headers}")

    # A consumer group member: join, commit what was read, leave.
    groups = rpc.GroupsStub(channel)
    joined = groups.Heartbeat(
        pb.HeartbeatRequest(group="py-group", member_epoch=0, topics=["py-demo"], client_id="python")
    )
    owned = [(t.topic, p) for t in joined.assignment for p in t.partitions]
    print(f"joined py-group as member epoch {joined.member_epoch}, assigned {owned}")
    last = fetched.topics[0].partitions[0].records[-1].offset
    groups.CommitOffsets(
        pb.CommitOffsetsRequest(
            group="py-group",
            member_id=joined.member_id,
            member_epoch=joined.member_epoch,
            partitions=[pb.CommitPartition(topic="py-demo", partition=0, offset=last + 1)],
        )
    )
    offsets = groups.FetchOffsets(pb.FetchOffsetsRequest(group="py-group"))
    for o in offsets.offsets:
        print(f"committed {o.topic}/{o.partition} at {o.offset}, lag {o.lag}")
    groups.Heartbeat(pb.HeartbeatRequest(group="py-group", member_id=joined.member_id, member_epoch=-1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7390")
