"""Echo of the metrics file into the collector's own log (metrics-collection.md §3.1): with the
StdOut collector the training output goes to the file, not to the container log, so the sidecar
follows the file (`tail -f`) and writes every line, and `kubectl logs POD -c
metrics-logger-and-collector` shows the training output."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TextIO


class Follower:
    """`start()` follows `path` on a daemon thread, from when it appears; `stop()` writes what
    is left up to the end of the file and returns."""

    def __init__(self, path: str, out: TextIO, *, poll: float = 0.2):
        self.path, self.out, self.poll = Path(path), out, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow", daemon=True)

    def start(self) -> "Follower":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self.path.exists():
            if self._stop.wait(self.poll):
                if not self.path.exists():
                    return
                break
        try:
            with open(self.path, encoding="utf-8", errors="replace", newline="") as fh:
                partial = ""
                while True:
                    chunk = fh.read(65536)
                    if chunk:
                        partial = self._write_lines(partial + chunk)
                        continue
                    if self._stop.is_set():
                        break
                    time.sleep(self.poll)
                if partial:
                    self.out.write(partial + "\n")
                self.out.flush()
        except OSError:
            return  # the echo is a convenience: the metrics themselves are read again in full

    def _write_lines(self, text: str) -> str:
        *lines, rest = text.split("\n")
        if lines:
            self.out.write("".join(line + "\n" for line in lines))
            self.out.flush()
        return rest
