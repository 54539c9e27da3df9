"""The protocol buffers wire format, read without generated code: what the TensorBoard event
reader (collector.tfevent) and the API's protobuf request bodies (katib.apiserver.protobuf)
both decode. Standalone, like the rest of the collector program."""
from __future__ import annotations

from typing import Iterator

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def varint(buf, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it (at most 10 bytes, as for a uint64)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("a varint runs past the end of the data")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError("a varint is longer than 10 bytes")


def fields(buf) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of each field of a message: an int for a varint, a
    slice of `buf` (same type: bytes or memoryview) for a length-delimited field and for the
    raw 8 or 4 bytes of a fixed64/fixed32 one."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value, pos = varint(buf, pos)
        else:
            if wire == BYTES:
                size, pos = varint(buf, pos)
            elif wire in (FIXED64, FIXED32):
                size = 8 if wire == FIXED64 else 4
            else:
                raise WireError(f"field {number} has wire type {wire}, which is not supported")
            if pos + size > len(buf):
                raise WireError(f"field {number} is {size} bytes long, past the end of the data")
            value, pos = buf[pos:pos + size], pos + size
        yield number, wire, value
