"""A minimal decoder of the protobuf wire format, enough to read the small
metadata messages inside MediaPipe's `.task` bundles without the protobuf package.

A message is a run of fields, each `tag value` with `tag = field_number << 3 | wire_type`
(https://protobuf.dev/programming-guides/encoding/). A `repeated` scalar field is
written either packed (one LEN field holding all values) or as one field per value;
a reader must accept both, which `repeated_floats` and `repeated_varints` do.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

VARINT, I64, LEN, I32 = 0, 1, 2, 5

FieldValue = int | bytes


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the varint at `pos`: 7 bits a byte, least significant first, high bit = more follow.

    Returns:
        (value, the position after the varint).
    """
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError(f"protobuf: varint runs past the end of the data ({len(data)} bytes)")
        if shift >= 64:
            raise ValueError(f"protobuf: varint longer than 10 bytes before byte {pos}")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def _take(data: bytes, pos: int, size: int, field_number: int) -> bytes:
    if pos + size > len(data):
        raise ValueError(
            f"protobuf: field {field_number} needs {size} bytes at byte {pos}, past the end ({len(data)} bytes)"
        )
    return data[pos:pos + size]


def iter_fields(data: bytes) -> Iterator[tuple[int, int, FieldValue]]:
    """Yield `(field_number, wire_type, value)` for each field of one message, in order.

    `value` is the decoded int for VARINT and the raw bytes for LEN, I64 (8 bytes)
    and I32 (4 bytes): only the caller knows the schema, hence how to read them.
    """
    pos = 0
    while pos < len(data):
        tag, pos = read_varint(data, pos)
        field_number, wire_type = tag >> 3, tag & 7
        if field_number == 0:
            raise ValueError(f"protobuf: field number 0 before byte {pos}")
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type in (I64, I32):
            size = 8 if wire_type == I64 else 4
            value, pos = _take(data, pos, size, field_number), pos + size
        elif wire_type == LEN:
            size, pos = read_varint(data, pos)
            value, pos = _take(data, pos, size, field_number), pos + size
        else:  # 3 and 4 are the long-deprecated groups; 6 and 7 do not exist
            raise ValueError(f"protobuf: unsupported wire type {wire_type} in field {field_number}")
        yield field_number, wire_type, value


def packed_floats(data: bytes) -> np.ndarray:
    """A packed `repeated float` payload -> [N] float32 (little-endian on the wire)."""
    if len(data) % 4:
        raise ValueError(f"protobuf: packed floats of {len(data)} bytes, not a multiple of 4")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def packed_varints(data: bytes) -> list[int]:
    """A packed `repeated uint32/uint64/int32/enum` payload -> its values, in order."""
    values, pos = [], 0
    while pos < len(data):
        value, pos = read_varint(data, pos)
        values.append(value)
    return values


def repeated_floats(wire_type: int, value: FieldValue) -> np.ndarray:
    """One occurrence of a `repeated float` field, packed (LEN) or single (I32) -> [N] float32."""
    if wire_type not in (LEN, I32):
        raise ValueError(f"protobuf: float field with wire type {wire_type}, expected {LEN} or {I32}")
    return packed_floats(value)


def repeated_varints(wire_type: int, value: FieldValue) -> list[int]:
    """One occurrence of a repeated integer field, packed (LEN) or single (VARINT) -> its values."""
    if wire_type == VARINT:
        return [value]
    if wire_type == LEN:
        return packed_varints(value)
    raise ValueError(f"protobuf: integer field with wire type {wire_type}, expected {VARINT} or {LEN}")
