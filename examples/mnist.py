#!/usr/bin/env python3
"""A small digit classifier trained with numpy, printing metrics like Katib's mnist example.

The data are 8x8 "digits" generated from ten fixed stroke patterns with noise and shifts
(deterministic, no download). The network is a multi-layer perceptron; the hyperparameters
Katib tunes are flags:

    python3 examples/mnist.py --lr=0.02 --num-layers=3 --optimizer=adam --num-epochs=5

Each epoch prints `Epoch[k] Train-accuracy=...` and `Epoch[k] Validation-accuracy=...` behind
an RFC 3339 timestamp, which Katib's StdOut collector parses."""
from __future__ import annotations

import argparse
import datetime as dt
import sys

import numpy as np

STROKES = {  # segments of an 8x8 seven-segment-like digit: (row0, col0, row1, col1)
    "top": (0, 1, 0, 6), "mid": (3, 1, 3, 6), "bot": (7, 1, 7, 6),
    "tl": (0, 1, 3, 1), "tr": (0, 6, 3, 6), "bl": (3, 1, 7, 1), "br": (3, 6, 7, 6),
}
DIGITS = ["top tl tr bl br bot", "tr br", "top tr mid bl bot", "top tr mid br bot", "tl tr mid br",
          "top tl mid br bot", "top tl mid bl br bot", "top tr br", "top tl tr mid bl br bot",
          "top tl tr mid br bot"]


def prototypes() -> np.ndarray:
    protos = np.zeros((10, 8, 8))
    for d, segs in enumerate(DIGITS):
        for seg in segs.split():
            r0, c0, r1, c1 = STROKES[seg]
            protos[d, r0:r1 + 1, c0:c1 + 1] = 1.0
    return protos


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    protos = prototypes()
    y = rng.integers(0, 10, size=n)
    x = protos[y]
    shifts = rng.integers(-1, 2, size=(n, 2))
    x = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(x, shifts)])
    x = x * rng.uniform(0.6, 1.0, size=(n, 1, 1)) + rng.normal(0, 0.35, size=x.shape)
    return x.reshape(n, 64).astype(np.float64), y


class Optimizer:
    def __init__(self, kind: str, lr: float, shapes):
        self.kind, self.lr, self.t = kind, lr, 0
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def step(self, params, grads):
        self.t += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.kind == "sgd":
                self.m[i] = 0.9 * self.m[i] + g
                p -= self.lr * 10 * self.m[i]
            elif self.kind == "adam":
                self.m[i] = 0.9 * self.m[i] + 0.1 * g
                self.v[i] = 0.999 * self.v[i] + 0.001 * g * g
                mhat = self.m[i] / (1 - 0.9 ** self.t)
                vhat = self.v[i] / (1 - 0.999 ** self.t)
                p -= self.lr * 0.1 * mhat / (np.sqrt(vhat) + 1e-8)
            elif self.kind == "ftrl":  # FTRL-proximal without regularisation, alpha = 20 lr, beta = 1
                n_old = self.v[i]
                n_new = n_old + g * g
                alpha = self.lr * 20
                sigma = (np.sqrt(n_new) - np.sqrt(n_old)) / alpha
                self.m[i] += g - sigma * p
                self.v[i] = n_new
                p[...] = -self.m[i] * alpha / (1.0 + np.sqrt(n_new))
            else:
                raise SystemExit(f"unknown optimizer {self.kind!r}: use sgd, adam or ftrl")


def init_params(num_layers: int, hidden: int, rng: np.random.Generator):
    sizes = [64] + [hidden] * max(num_layers - 1, 0) + [10]
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params.append(rng.normal(0, np.sqrt(2.0 / a), size=(a, b)))
        params.append(np.zeros(b))
    return params


def forward(params, x):
    acts = [x]
    for i in range(0, len(params), 2):
        z = acts[-1] @ params[i] + params[i + 1]
        acts.append(np.maximum(z, 0) if i + 2 < len(params) else z)
    return acts


def gradients(params, x, y):
    acts = forward(params, x)
    logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    delta = probs
    delta[np.arange(len(y)), y] -= 1
    delta /= len(y)
    grads = [None] * len(params)
    for i in range(len(params) - 2, -1, -2):
        grads[i] = acts[i // 2].T @ delta
        grads[i + 1] = delta.sum(axis=0)
        if i:
            delta = (delta @ params[i].T) * (acts[i // 2] > 0)
    return grads


def accuracy(params, x, y) -> float:
    return float((forward(params, x)[-1].argmax(axis=1) == y).mean())


def log(message: str) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{stamp} INFO     {message}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate")
    parser.add_argument("--num-layers", type=int, default=2, help="dense layers, output included")
    parser.add_argument("--optimizer", default="sgd", help="sgd, adam or ftrl")
    parser.add_argument("--num-epochs", type=int, default=4, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per update")
    parser.add_argument("--hidden", type=int, default=32, help="units per hidden layer")
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    args = parser.parse_args(argv)
    if args.lr <= 0 or args.num_layers < 1 or args.num_epochs < 1 or args.batch_size < 1:
        parser.error("--lr must be > 0 and --num-layers, --num-epochs, --batch-size >= 1")
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(3000, rng)
    x_val, y_val = make_data(1000, rng)
    params = init_params(args.num_layers, args.hidden, rng)
    opt = Optimizer(args.optimizer, args.lr, [p.shape for p in params])
    log(f"start training: lr={args.lr} num-layers={args.num_layers} optimizer={args.optimizer}")
    for epoch in range(args.num_epochs):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            opt.step(params, gradients(params, x_train[batch], y_train[batch]))
        if not all(np.isfinite(p).all() for p in params):
            log(f"Epoch[{epoch}] training diverged")
            return 1
        log(f"Epoch[{epoch}] Train-accuracy={accuracy(params, x_train, y_train):.6f}")
        log(f"Epoch[{epoch}] Validation-accuracy={accuracy(params, x_val, y_val):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
