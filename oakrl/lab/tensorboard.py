"""TensorBoard event files next to a run's parquet tables, written as the run goes.

    tensorboard --logdir runs        # every results directory is one TensorBoard run

Per chunk (at its end step): `return/mean` (episodes finished in the chunk, mean over them),
`return/recent` (the last 100 episodes), `average_reward` (reward per step so far, mean over
seeds), `steps_per_second` (this chunk, all seeds), and `diagnostics/NAME` (the chunk mean of
each agent diagnostic, mean over seeds).

A minimal writer, without TensorFlow, tensorboardX or protobuf: an event file is a sequence of
TFRecords (length, masked CRC-32C of the length, an `Event` protobuf, masked CRC-32C of it), and
scalars need only four protobuf fields (Event.wall_time, step, summary; Summary.Value tag and
simple_value). `read_scalars` reads such a file back (for tests and `oakrl runs`). Event files
are logs, appended and flushed per chunk, not results: a resumed run opens a new file, and the
steps between its last checkpoint and the stop appear twice (TensorBoard draws both).
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from oakrl.io import StorageError

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # a length-delimited protobuf field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(
    step: int, wall: float, scalars: dict[str, float] | None = None, version: str | None = None
) -> bytes:
    msg = b"\x09" + struct.pack("<d", wall) + b"\x10" + _varint(step)
    if version is not None:
        msg += _field(3, version.encode())
    if scalars:
        values = b"".join(
            _field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", value))
            for tag, value in scalars.items()
        )
        msg += _field(5, values)
    return msg


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


class EventWriter:
    """Appends scalar events to one new event file in `directory`."""

    def __init__(self, directory: Path):
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = Path(directory) / name
        self._file = None
        self._write(_event(0, time.time(), version="brain.Event:2"))

    def _write(self, record: bytes) -> None:
        try:
            if self._file is None:
                self._file = open(self.path, "ab")  # noqa: SIM115 (kept open for the run)
            self._file.write(_record(record))
            self._file.flush()
        except OSError as e:
            raise StorageError(self.path, e) from e

    def scalars(self, step: int, values: dict[str, float]) -> None:
        finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
        if finite:
            self._write(_event(int(step), time.time(), finite))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ChunkScalars:
    """The lab's per-chunk scalars (see the module docstring) into an EventWriter."""

    def __init__(self, directory: Path, seeds: int):
        self.writer, self.seeds = EventWriter(directory), seeds
        self.recent: list[float] = []
        self.t, self.step = time.perf_counter(), None

    def __call__(self, record: Any) -> None:
        now = time.perf_counter()
        ret = np.asarray(record.ret, np.float64)
        self.recent = (self.recent + ret.tolist())[-100:]
        values = {
            "return/mean": float(ret.mean()) if ret.size else None,
            "return/recent": float(np.mean(self.recent)) if self.recent else None,
            "average_reward": float(np.mean(record.reward_sum)) / max(record.end_step, 1),
        }
        if self.step is not None:  # the first chunk's time includes the start-up
            values["steps_per_second"] = (record.end_step - self.step) * self.seeds / max(now - self.t, 1e-9)
        for k, v in record.info.items():
            v = np.asarray(v, np.float64)
            v = v[np.isfinite(v)]  # seeds without a value this chunk (NaN) are left out
            values[f"diagnostics/{k}"] = float(v.mean()) if v.size else None
        self.writer.scalars(record.end_step, values)
        self.t, self.step = now, record.end_step

    def close(self) -> None:
        self.writer.close()


def read_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of an event file, checking every record's CRCs."""
    data = Path(path).read_bytes()
    out: dict[str, list[tuple[int, float]]] = {}
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        if struct.unpack_from("<I", data, pos + 8)[0] != _masked(data[pos : pos + 8]):
            raise ValueError(f"{path}: bad length checksum at byte {pos}")
        msg = data[pos + 12 : pos + 12 + n]
        if struct.unpack_from("<I", data, pos + 12 + n)[0] != _masked(msg):
            raise ValueError(f"{path}: bad data checksum at byte {pos}")
        pos += 16 + n
        step, fields = 0, _parse(msg)
        for number, value in fields:
            if number == 2:
                step = value
        for number, value in fields:
            if number == 5:
                for vn, v in _parse(value):
                    if vn == 1:
                        inner = dict(_parse(v))
                        if 1 in inner and 2 in inner:
                            out.setdefault(inner[1].decode(), []).append((step, inner[2]))
    return out


def _parse(msg: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: varints, doubles, floats, bytes."""
    fields, pos = [], 0
    while pos < len(msg):
        key, pos = _read_varint(msg, pos)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, pos = _read_varint(msg, pos)
        elif kind == 1:
            value, pos = struct.unpack_from("<d", msg, pos)[0], pos + 8
        elif kind == 5:
            value, pos = struct.unpack_from("<f", msg, pos)[0], pos + 4
        elif kind == 2:
            n, pos = _read_varint(msg, pos)
            value, pos = msg[pos : pos + n], pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {kind}")
        fields.append((number, value))
    return fields


def _read_varint(msg: bytes, pos: int) -> tuple[int, int]:
    n, shift = 0, 0
    while True:
        b = msg[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos
