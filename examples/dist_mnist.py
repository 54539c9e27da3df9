#!/usr/bin/env python3
"""Data-parallel training of examples/mnist.py's classifier across the replicas of a PyTorchJob
or a TFJob: the script reads the environment the operators set and needs nothing else.

* PyTorchJob: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
* TFJob: TF_CONFIG; the chief (or worker 0) is rank 0, workers follow; a ps task only waits.

Every step, each rank computes the gradients of its shard of the batch and sends them to rank
0, which averages them and sends the mean back (a star all-reduce over TCP), so all replicas
keep identical parameters. Rank 0 prints the metrics (`accuracy=...`, as upstream's PyTorch
example) and, with `--log-dir`, writes them as TensorBoard event files too (tag `accuracy_1`,
as upstream's TFJob example reports), without TensorFlow.

    python3 examples/dist_mnist.py --lr=0.02 --momentum=0.9 [--log-dir=DIR]"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist import accuracy, gradients, init_params, log, make_data  # noqa: E402


def topology() -> tuple[int, int, tuple[str, int], bool]:
    """(rank, world size, rank 0's address, is a parameter server) from the operator's env."""
    if "TF_CONFIG" in os.environ:
        config = json.loads(os.environ["TF_CONFIG"])
        cluster, task = config["cluster"], config["task"]
        ranks = [("chief", i) for i in range(len(cluster.get("chief", [])))] + \
                [("worker", i) for i in range(len(cluster.get("worker", [])))]
        first = cluster[ranks[0][0]][ranks[0][1]]
        host, _, port = first.rpartition(":")
        if task["type"] not in ("chief", "worker"):
            return -1, len(ranks), (host, int(port)), True
        return ranks.index((task["type"], task["index"])), len(ranks), (host, int(port)), False
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            (os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500"))), False)


def send(conn: socket.socket, array: np.ndarray) -> None:
    data = array.astype(np.float64).tobytes()
    conn.sendall(struct.pack("<Q", len(data)) + data)


def recv(conn: socket.socket) -> np.ndarray:
    def exactly(n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = conn.recv(min(1 << 20, n - got))
            if not chunk:
                raise ConnectionError("peer closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    (size,) = struct.unpack("<Q", exactly(8))
    return np.frombuffer(exactly(size), dtype=np.float64)


class EventWriter:
    """TensorBoard scalars as TFRecords of Event protos (wall_time, step, summary.value)."""

    def __init__(self, directory: str):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self.file = open(self.path, "ab")

    @staticmethod
    def _crc(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        crc ^= 0xFFFFFFFF
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    @staticmethod
    def _varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def scalar(self, tag: str, value: float, step: int) -> None:
        tag_bytes = tag.encode()
        val = b"\x0a" + self._varint(len(tag_bytes)) + tag_bytes + b"\x15" + struct.pack("<f", value)
        summary = b"\x0a" + self._varint(len(val)) + val
        event = (b"\x09" + struct.pack("<d", time.time()) + b"\x10" + self._varint(step)
                 + b"\x2a" + self._varint(len(summary)) + summary)
        header = struct.pack("<Q", len(event))
        self.file.write(header + struct.pack("<I", self._crc(header)) + event + struct.pack("<I", self._crc(event)))
        self.file.flush()


def connect(rank: int, world: int, address: tuple[str, int]) -> list[socket.socket]:
    """Rank 0: the other ranks' connections, in rank order; others: [the link to rank 0]."""
    if rank == 0:
        server = socket.create_server(address)
        peers: dict[int, socket.socket] = {}
        server.settimeout(120)
        while len(peers) < world - 1:
            conn, _ = server.accept()
            peers[int(recv(conn)[0])] = conn
        server.close()
        return [peers[r] for r in sorted(peers)]
    for _ in range(600):
        try:
            conn = socket.create_connection(address, timeout=120)
            send(conn, np.array([rank]))
            return [conn]
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"rank {rank}: cannot reach rank 0 at {address[0]}:{address[1]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=96, help="global batch, split across ranks")
    parser.add_argument("--log-dir", default="", help="also write TensorBoard event files here")
    args, _unknown = parser.parse_known_args(argv)
    rank, world, address, is_ps = topology()
    if is_ps:
        while True:  # a parameter server has no work here; the job stops it at the end
            time.sleep(3600)
    rng = np.random.default_rng(0)  # same data and initial parameters on every rank
    x_train, y_train = make_data(2400, rng)
    x_val, y_val = make_data(800, rng)
    params = init_params(2, 32, rng)
    shapes = [p.shape for p in params]
    velocity = [np.zeros(s) for s in shapes]
    links = connect(rank, world, address) if world > 1 else []
    writer = EventWriter(args.log_dir) if args.log_dir and rank == 0 else None
    if rank == 0:
        log(f"training on {world} replica(s): lr={args.lr} momentum={args.momentum}")
    step = 0
    for epoch in range(args.epochs):
        order = np.random.default_rng(epoch).permutation(len(y_train))
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            mine = batch[rank::world]
            flat = np.concatenate([g.ravel() for g in gradients(params, x_train[mine], y_train[mine])])
            if rank == 0:
                for link in links:
                    flat = flat + recv(link)
                flat /= world
                for link in links:
                    send(link, flat)
            elif links:
                send(links[0], flat)
                flat = recv(links[0])
            offset = 0
            for i, shape in enumerate(shapes):
                size = int(np.prod(shape))
                velocity[i] = args.momentum * velocity[i] + flat[offset:offset + size].reshape(shape)
                params[i] -= args.lr * 10 * velocity[i]
                offset += size
            step += 1
        if rank == 0:
            acc = accuracy(params, x_val, y_val)
            log(f"Epoch[{epoch}] accuracy={acc:.6f}")
            if writer is not None:
                writer.scalar("accuracy_1", acc, step)
    for link in links:
        link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
