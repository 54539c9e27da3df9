"""TensorFlowEvent collector: TensorBoard event files → MetricLog records, without TensorFlow.

An event file is a sequence of TFRecords (length: uint64 LE, masked CRC-32C of the length,
data, masked CRC-32C of the data); each record is an `Event` protocol buffer. Only the fields
a scalar needs are decoded, straight from the protobuf wire format:
  Event:        1 wall_time (double), 2 step (int64), 5 summary (Summary)
  Summary:      1 value (repeated Value)
  Value:        1 tag (string), 2 simple_value (float), 8 tensor (TensorProto)
  TensorProto:  1 dtype (enum: 1 float, 2 double, 19 half), 4 tensor_content (bytes),
                5 float_val (packed float), 6 double_val (packed double)
`simple_value` is what TF1's `tf.summary.scalar`, tensorboardX and PyTorch's SummaryWriter
write; a scalar `tensor` is what TF2's `tf.summary.scalar` writes. Both are read.

Matching follows Katib's tfevent-metricscollector (metrics-collection.md §3.3): for every
value and every metric name, the tag is `<parent directory>/<tag>` when the metric name has a
`/` (so `train/accuracy` and `test/accuracy` tell sub-directories apart), and a record is kept
when the tag starts with the metric name. Timestamps are the event's wall time in UTC (RFC 3339).

A record whose CRC does not match, or a truncated last record (the writer was still writing),
ends the reading of that file with a warning; files that are not event files are skipped."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import struct
from pathlib import Path
from typing import Iterator

from collector.parse import MetricLog
from collector.wire import WireError, fields

logger = logging.getLogger(__name__)

_FLOAT, _DOUBLE, _HALF = 1, 2, 19


class EventFileError(ValueError):
    """Not (or no longer) a readable event file."""


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(data: bytes, *, name: str = "event file") -> Iterator[bytes]:
    """The TFRecord payloads of `data`; EventFileError at the first damaged or cut record
    (the records before it have been yielded)."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            raise EventFileError(f"{name}: truncated record header at byte {pos}")
        length, length_crc = struct.unpack_from("<QI", data, pos)
        if masked_crc(data[pos:pos + 8]) != length_crc:
            raise EventFileError(f"{name}: bad length checksum at byte {pos}")
        start, end = pos + 12, pos + 12 + length
        if end + 4 > len(data):
            raise EventFileError(f"{name}: truncated record at byte {pos}")
        payload = data[start:end]
        (data_crc,) = struct.unpack_from("<I", data, end)
        if masked_crc(payload) != data_crc:
            raise EventFileError(f"{name}: bad data checksum at byte {pos}")
        yield payload
        pos = end + 4


def _tensor_scalar(buf: bytes) -> float | None:
    dtype, content, floats, doubles = None, b"", [], []
    for number, wire, value in fields(buf):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number == 5:
            floats += (struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else
                       struct.unpack("<f", value))
        elif number == 6:
            doubles += (struct.unpack(f"<{len(value) // 8}d", value) if wire == 2 else
                        struct.unpack("<d", value))
    if floats:
        return floats[0]
    if doubles:
        return doubles[0]
    if content:
        fmt = {_FLOAT: "<f", _DOUBLE: "<d", _HALF: "<e"}.get(dtype)
        if fmt and len(content) >= struct.calcsize(fmt):
            return struct.unpack_from(fmt, content)[0]
    return None


def scalars(event: bytes) -> tuple[float, list[tuple[str, float]]]:
    """(wall_time, [(tag, value)]) of one Event record's scalar summary values."""
    wall_time, values = 0.0, []
    for number, wire, value in fields(event):
        if number == 1 and wire == 1:
            (wall_time,) = struct.unpack("<d", value)
        elif number == 5 and wire == 2:
            for vnum, vwire, summary_value in fields(value):
                if vnum != 1 or vwire != 2:
                    continue
                tag, scalar = "", None
                for fnum, fwire, item in fields(summary_value):
                    if fnum == 1 and fwire == 2:
                        tag = item.decode("utf-8", "replace")
                    elif fnum == 2 and fwire == 5:
                        (scalar,) = struct.unpack("<f", item)
                    elif fnum == 8 and fwire == 2 and scalar is None:
                        scalar = _tensor_scalar(item)
                if scalar is not None:
                    values.append((tag, scalar))
    return wall_time, values


# -- collecting -----------------------------------------------------------------------------
def _stamp(wall_time: float) -> str:
    moment = _dt.datetime.fromtimestamp(wall_time, tz=_dt.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _format(value: float) -> str:
    """Python's shortest repr of the float32 value (0.5, not 0.5000000001)."""
    as32 = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(6, 18):
        text = f"{as32:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == as32:
            return text
    return repr(as32)


def parse_event_file(path: Path, metric_names: list[str]) -> list[MetricLog]:
    """The metric records of one event file (raises EventFileError when it has none readable
    and is damaged from the start, e.g. not an event file)."""
    data = path.read_bytes()
    parent = path.parent.name
    logs: list[MetricLog] = []
    read = 0
    try:
        for payload in records(data, name=str(path)):
            read += 1
            wall_time, values = scalars(payload)
            for tag, value in values:
                for name in metric_names:
                    full = f"{parent}/{tag}" if "/" in name and parent else tag
                    if full.startswith(name):
                        logs.append(MetricLog(_stamp(wall_time), name, _format(value)))
    except (EventFileError, WireError) as err:
        if read == 0:
            raise
        logger.warning("%s; the records before it are kept", err)
    return logs


def parse_directory(directory: Path | str, metric_names: list[str]) -> list[MetricLog]:
    """Every event file under `directory` (recursively, in path order); other files skipped."""
    logs: list[MetricLog] = []
    root = Path(directory)
    if not str(directory) or not root.is_dir():
        return logs
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            try:
                logs.extend(parse_event_file(path, metric_names))
            except (EventFileError, WireError, OSError) as err:
                logger.debug("skipping %s: %s", path, err)
    return logs
