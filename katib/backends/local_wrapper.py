"""The wrapper that runs one job on this machine, and the job directory it shares with the runner.

`spawn` starts `sh -c <script>` as a session leader of its own (so it outlives katib); the
script starts the command in a new session, waits for it and records its exit status in the
job directory. A few lines of dash rather than a Python module: about 2 ms per job instead of
the ~12 ms of an interpreter start (the control-plane benchmark runs 10,000 trials). The rest
is /proc inspection and signals, and the small files of a job directory (see local_runner)."""
from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from katib.backends.local_process import StartError

logger = logging.getLogger(__name__)

WRAPPER_TAG = "katib-local-wrapper"  # $0 of the wrapper script: how recover() recognises it
START_ERROR_EXIT = 128  # recorded when the wrapper cannot even enter the working directory
_SCRIPT = """d=$1 w=$2; shift 2
if cd -- "$w"; then
  {launch} -- "$@" & c=$!
  echo "$c" >"$d/pgid"
  wait "$c" 2>/dev/null; e=$?
  kill -s KILL -- "-$c" 2>/dev/null
else
  e={start_error}
fi
echo "$e" >"$d/exit"
exit "$e"
"""
# What the script does, line by line: enter the working directory; start the command in a new
# session (setsid) with SIGINT/SIGQUIT back to default (sh ignores them for `&` jobs, env resets
# them); record its pid, which is also its process group id; wait for it; like a container whose
# main process ended, kill what is left of its group; record the exit status (128+N for signal N),
# and exit with it too (the runner, its parent, learns it even when the file cannot be written: a
# full or read-only disk). `exit` appears only once the command is over, and a reader takes an
# empty or unreadable one for "no status" (read_int): a write of a few bytes needs no rename, and
# an `mv` would cost a fork and an exec per job (a millisecond of CPU, as much as the trial's own
# `sh -c`). The wrapper itself is a session leader started by posix_spawn, so it outlives katib.

_SIGNALS_TO_DEFAULT = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}


@functools.cache
def _wrapper_script() -> str:
    tools = {}
    for tool in ("setsid", "env"):
        found = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if found is None and tool != "env":
            raise RuntimeError(f"the local runner needs `{tool}` (util-linux/coreutils)")
        tools[tool] = found
    launch = shlex.quote(tools["setsid"])
    env = tools["env"]
    if env and subprocess.run([env, "--default-signal=INT,QUIT", "true"],
                              capture_output=True).returncode == 0:
        launch = f"{shlex.quote(env)} --default-signal=INT,QUIT {launch}"
    else:
        logger.debug("env --default-signal is unavailable: jobs start with SIGINT/SIGQUIT ignored")
    return _SCRIPT.format(launch=launch, start_error=START_ERROR_EXIT)


def spawn(*, job_dir: Path, work_dir: str, argv: list[str], env: dict[str, str]) -> int:
    """Start the wrapper for one job (output appended to job_dir/output.log); returns its pid."""
    log = str(job_dir / "output.log")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        "/bin/sh", ["/bin/sh", "-c", _wrapper_script(), WRAPPER_TAG, str(job_dir), work_dir, *argv],
        env, file_actions=actions, setsid=True,
        setsigdef=_SIGNALS_TO_DEFAULT, setsigmask=())


@dataclass(frozen=True)
class ProcInfo:
    state: str       # R, S, D, Z (zombie), ...
    pgrp: int
    session: int
    starttime: int   # clock ticks after boot: with the pid, names one process for good

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X", "x")


def proc_info(pid: int) -> ProcInfo | None:
    """/proc/<pid>/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if not data:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return ProcInfo(state=fields[0].decode(), pgrp=int(fields[2]), session=int(fields[3]),
                    starttime=int(fields[19]))


@functools.cache
def boot_id() -> str:
    """Changes at every boot: a pid recorded before a reboot names nothing after it."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def find_wrappers() -> dict[str, int]:
    """job dir → pid of every wrapper alive on this machine (for dirs whose pid file is missing)."""
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 4 and argv[3] == WRAPPER_TAG.encode():
            info = proc_info(int(entry))
            # Only the wrapper leads its session; its forks share its argv until they exec.
            if info is not None and info.session == int(entry):
                found[os.fsdecode(argv[4])] = int(entry)
    return found


def find_writers(log: Path) -> list[int]:
    """Processes whose stdout or stderr is `log`: what is left of a job whose process group
    is unknown."""
    target = str(log)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and any(_fd_target(entry, fd) == target for fd in (1, 2)):
            found.append(int(entry))
    return found


def _fd_target(pid: str, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def kill_orphan(path: Path, record: dict) -> None:
    """The wrapper is gone but what it started may still run: kill its session if it is
    provably this job's (same boot, session leader, started after the wrapper), and every
    process still writing to this job's output.log (covers a wrapper that died before
    recording the session)."""
    if record.get("boot_id", boot_id()) != boot_id():
        return
    pgid = read_int(path / "pgid")
    info = proc_info(pgid) if pgid else None
    if info and info.session == pgid and info.starttime >= (record.get("starttime") or 0):
        logger.info("killing process group %d left behind by a lost job in %s", pgid, path)
        signal_group(pgid, signal.SIGKILL)
    for pid in find_writers(path / "output.log"):
        logger.info("killing process %d left behind by a lost job in %s", pid, path)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def reap(pidfd: int, *, block: bool = False) -> int | None:
    """Collect the wrapper if it is our child (it is not after a restart); its exit status
    when it exited (rather than being killed). By pidfd, so a recycled pid can never make us
    reap somebody else's child."""
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | (0 if block else os.WNOHANG))
    except ChildProcessError:
        return None
    if result is None or result.si_code != os.CLD_EXITED:
        return None
    return result.si_status


def reap_all(pidfds: list[int]) -> None:
    for pidfd in pidfds:
        reap(pidfd, block=True)
        os.close(pidfd)


# ------------------------------------------------------------------------------ job directory

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def dir_name(key: str) -> str:
    """Reversible, filesystem-safe name of a key: `ns/name` → `ns_name` (Kubernetes names
    have no `_`); other characters outside [A-Za-z0-9.-] and a leading `.` become %XX."""
    out = []
    for i, ch in enumerate(key):
        if ch == "/":
            out.append("_")
        elif ch in _SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
    name = "".join(out)
    if not name or len(name.encode()) > 255:
        raise ValueError(f"job key {key!r} cannot be a directory name")
    return name


def key_of(name: str) -> str:
    """Inverse of dir_name."""
    raw = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "%":
            raw.append(int(name[i + 1:i + 3], 16))
            i += 3
        else:
            raw.extend(b"/" if name[i] == "_" else name[i].encode())
            i += 1
    return raw.decode()


def key_of_dir(name: str) -> str | None:
    try:
        key = key_of(name)
        return key if dir_name(key) == name else None
    except ValueError:
        return None


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path`; an OSError always names the path (a full disk fails the write
    or the close, whose errors carry no file name)."""
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old content or the new, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    write_file(tmp, data)
    os.replace(tmp, path)


def cap_output(path: Path, max_bytes: int) -> None:
    """Keep the first max_bytes of the job's output.log, then a marker line, nothing more."""
    log = path / "output.log"
    try:
        if log.stat().st_size <= max_bytes:
            return
        marker = (f"\n[katib] output.log reached {max_bytes} bytes; "
                  "later output was discarded\n").encode()
        fd = os.open(log, os.O_WRONLY)
        try:  # pwrite then truncate: anything appended meanwhile is cut off too
            os.pwrite(fd, marker, max_bytes)
            os.ftruncate(fd, max_bytes + len(marker))
        finally:
            os.close(fd)
    except FileNotFoundError:
        pass


def tail(path: Path, size: int = 4096) -> str:
    """The last `size` bytes of a file as text ("" when unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_json(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def read_int(path: Path) -> int | None:
    """An integer file, or None if absent or not (yet) complete."""
    try:
        with open(path, "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def prepare_metrics_file(metrics_file: str, job_dir: Path) -> None:
    """A File collector's path as a fresh pod sees it: its directory exists (a pod gets it as a
    volume) and the file does not. A file left there (by an earlier trial or run) is moved into
    this job's directory as `previous-<name>`, never deleted. StartError names path and error."""
    target = Path(metrics_file)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StartError(f"cannot create the directory of File collector path "
                         f"{metrics_file}: {e.strerror}") from None
    if not os.path.lexists(target):
        return
    aside = job_dir / f"previous-{target.name}"
    try:
        shutil.move(str(target), str(aside))
    except OSError as e:
        raise StartError(f"cannot move the existing File collector file {metrics_file} "
                         f"aside to {aside}: {e.strerror}") from None
    logger.info("File collector path %s existed; moved to %s before the job starts", target, aside)
