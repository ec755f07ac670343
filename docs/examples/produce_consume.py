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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7390")
