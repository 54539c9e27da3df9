#!/usr/bin/env python3
"""A tiny trainer (pure Python, generated data) that reports its metrics the way each Katib
metrics collector expects, for the collector examples:

    python3 examples/metrics_trainer.py --lr=0.02 --momentum=0.5 [--epochs=5] OUTPUT...

OUTPUT (any of them):
  --log-path FILE         append `{metricName: accuracy, metricValue: 0.97};{metricName: loss,
                          metricValue: 0.12}` per epoch, as upstream's file-metricscollector
                          example's trainer writes (File and Custom collectors)
  --tb-dir DIR            TensorBoard event files (tensorboardX): tag `accuracy` in DIR/test,
                          `loss` in DIR/train (metrics `test/accuracy`, `train/loss`)
  --prometheus-port PORT  serve `accuracy` and `loss` gauges at http://127.0.0.1:PORT/metrics
                          and, after the last epoch, until that value was scraped once (at most
                          --linger seconds)
and always `accuracy=... loss=...` lines on stdout.

The model is a logistic regression on two noisy Gaussian blobs, trained with momentum SGD; lr
and momentum matter, so a search finds better and worse trials."""
from __future__ import annotations

import argparse
import math
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def data(n: int, seed: int) -> list[tuple[float, float, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        cx = 3.0 if label else 1.0
        out.append((rng.gauss(cx, 1.2), rng.gauss(cx * 0.5, 1.2), label))
    return out


def train(lr: float, momentum: float, epochs: int):
    """Yields (epoch, accuracy, loss) on held-out data after each epoch."""
    train_set, test_set = data(200, 1), data(200, 2)
    w, v = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for epoch in range(1, epochs + 1):
        for x1, x2, y in train_set:
            p = 1 / (1 + math.exp(-(w[0] * x1 + w[1] * x2 + w[2])))
            for j, g in enumerate(((p - y) * x1, (p - y) * x2, p - y)):
                v[j] = momentum * v[j] - lr * g
                w[j] += v[j]
        correct, loss = 0, 0.0
        for x1, x2, y in test_set:
            p = min(max(1 / (1 + math.exp(-(w[0] * x1 + w[1] * x2 + w[2]))), 1e-9), 1 - 1e-9)
            correct += (p > 0.5) == bool(y)
            loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
        yield epoch, correct / len(test_set), loss / len(test_set)


class Gauges:
    def __init__(self):
        self.values = {"accuracy": 0.0, "loss": 0.0}
        self.version = 0          # bumped at every update
        self.scraped = -1         # the version the last scrape saw
        self.cond = threading.Condition()

    def set(self, **values) -> None:
        with self.cond:
            self.values.update(values)
            self.version += 1

    def text(self) -> str:
        with self.cond:
            self.scraped = self.version
            self.cond.notify_all()
            return "".join(f"# TYPE {k} gauge\n{k} {v}\n" for k, v in self.values.items())

    def wait_scraped(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.scraped == self.version, timeout)


def serve(port: int, gauges: Gauges) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = gauges.text().encode() if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--log-path", default="")
    p.add_argument("--tb-dir", default="")
    p.add_argument("--prometheus-port", type=int, default=0)
    p.add_argument("--linger", type=float, default=10.0)
    args = p.parse_args()
    writers = server = None
    gauges = Gauges()
    if args.tb_dir:
        from tensorboardX import SummaryWriter
        writers = {part: SummaryWriter(os.path.join(args.tb_dir, part)) for part in ("test", "train")}
    if args.prometheus_port:
        server = serve(args.prometheus_port, gauges)
    if args.log_path:
        os.makedirs(os.path.dirname(os.path.abspath(args.log_path)), exist_ok=True)
    for epoch, accuracy, loss in train(args.lr, args.momentum, args.epochs):
        print(f"epoch {epoch}: accuracy={accuracy:.4f} loss={loss:.4f}", flush=True)
        if args.log_path:
            with open(args.log_path, "a") as fh:
                fh.write(f"{{metricName: accuracy, metricValue: {accuracy:.4f}}};"
                         f"{{metricName: loss, metricValue: {loss:.4f}}}\n")
        if writers is not None:
            writers["test"].add_scalar("accuracy", accuracy, epoch)
            writers["train"].add_scalar("loss", loss, epoch)
        gauges.set(accuracy=accuracy, loss=loss)
    for writer in (writers or {}).values():
        writer.close()
    if server is not None:
        if not gauges.wait_scraped(args.linger):
            print(f"the last values were not scraped within {args.linger:g}s", flush=True)
        server.shutdown()


if __name__ == "__main__":
    main()
