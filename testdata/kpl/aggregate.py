#!/usr/bin/env python3
"""Aggregates records as the Kinesis Producer Library does, written from the
published format (amazon-kinesis-producer, aggregation-format.md), with no
code of Fineo's: an independent producer for Fineo's deaggregation tests.

Reads JSON Lines on stdin: {"key": PARTITION_KEY, "data": TEXT}, and writes
one aggregated record per --per input lines, base64, one per line:

  0xF3 0x89 0x9A 0xC2 | AggregatedRecord (protobuf) | MD5(AggregatedRecord)

  message AggregatedRecord {
    repeated string partition_key_table     = 1;
    repeated string explicit_hash_key_table = 2;
    repeated Record records                 = 3;
  }
  message Record {
    required uint64 partition_key_index     = 1;
    optional uint64 explicit_hash_key_index = 2;
    required bytes  data                    = 3;
    repeated Tag    tags                    = 4;
  }
"""
import base64
import hashlib
import json
import sys

MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num, n):
    return varint(num << 3 | 0) + varint(n)


def aggregate(items):
    keys = []
    for it in items:
        if it["key"] not in keys:
            keys.append(it["key"])
    msg = b"".join(field_bytes(1, k.encode()) for k in keys)
    for it in items:
        rec = field_varint(1, keys.index(it["key"])) + field_bytes(3, it["data"].encode())
        msg += field_bytes(3, rec)
    return MAGIC + msg + hashlib.md5(msg).digest()


def main():
    per = int(sys.argv[sys.argv.index("--per") + 1]) if "--per" in sys.argv else 10
    items = [json.loads(line) for line in sys.stdin if line.strip()]
    for i in range(0, len(items), per):
        print(base64.b64encode(aggregate(items[i:i + per])).decode())


if __name__ == "__main__":
    main()
