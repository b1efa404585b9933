"""A worker's side of the trainer fork server (``trainer.fork_server``): start one, and launch a trainer
child through it with the parts of ``subprocess.Popen`` a worker uses. Torch-free.

A launch is one connection: the worker sends the command, its environment and folder, with the write
ends of its stdout and stderr pipes; the server answers the child's pid, and later its exit status as
``Popen.returncode`` would give it. Whatever cannot be started so is the caller's to exec.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from trainer.processes import die_with_parent

log = logging.getLogger("tricklab.worker")

# Read when PyTorch and its libraries are imported or loaded: a child forked from a server imported
# under other values would differ from an exec'd one, so such a launch is refused.
IMPORT_TIME_ENV = ("PYTHONPATH", "PYTHONHOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_LIBRARY_PATH", "LD_PRELOAD")
MAX_MESSAGE_BYTES = 1 << 20
READY_SECONDS = 120.0
LISTENING = "listening"  # the server's one line on its stdout


def forkable_argv(command: Sequence[str]) -> list[str] | None:
    """``python -m trainer``'s arguments when ``command`` is this interpreter's ``python -m trainer run ...``."""
    if list(command[:4]) == [sys.executable, "-m", "trainer", "run"]:
        return list(command[3:])
    return None


class ForkedTrainer:
    """A trainer child the fork server started: its pid, its pipes, its exit status."""

    def __init__(self, *, connection: socket.socket, pid: int, stdout: IO[str], stderr: IO[str], args: list[str]):
        self._connection = connection
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.args = args
        self.returncode: int | None = None
        self.cpu_seconds: float | None = None  # its own and its waited-for children's, once it has ended

    def poll(self) -> int | None:
        self._read(timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def _read(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        readable, _, _ = select.select([self._connection], [], [], timeout)
        if not readable or self.returncode is not None:  # a signal handler's poll may have read it meanwhile
            return
        message = self._connection.recv(MAX_MESSAGE_BYTES)
        if not message:  # the server died, and the parent-death signal killed the child with it
            self.returncode = -signal.SIGKILL
            return
        ended = json.loads(message)
        self.cpu_seconds = ended["cpu_seconds"]
        self.returncode = ended["returncode"]


def launch_forked(
    command: Sequence[str], env: dict[str, str], *, socket_path: Path, cwd: Path | None = None
) -> ForkedTrainer | None:
    """``command`` started by the fork server listening on ``socket_path``, in a session of its own;
    None when it cannot be (no server there, another command, import-time settings that differ)."""
    if forkable_argv(command) is None:
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    request = {"command": list(command), "env": env, "cwd": str(cwd or Path.cwd())}
    try:
        connection.connect(str(socket_path))
        socket.send_fds(connection, [json.dumps(request).encode()], [stdout_write, stderr_write])
        reply = connection.recv(MAX_MESSAGE_BYTES)
    except OSError as exc:
        reply = json.dumps({"refused": str(exc)}).encode()
    finally:
        os.close(stdout_write)
        os.close(stderr_write)
    answer: dict[str, Any] = json.loads(reply) if reply else {"refused": "the fork server closed the connection"}
    if "pid" not in answer:
        log.info("starting the trainer without the fork server at %s: %s", socket_path, answer["refused"])
        connection.close()
        os.close(stdout_read)
        os.close(stderr_read)
        return None
    return ForkedTrainer(
        connection=connection,
        pid=answer["pid"],
        stdout=open(stdout_read, encoding="utf-8", errors="replace", buffering=1),
        stderr=open(stderr_read, encoding="utf-8", errors="replace", buffering=1),
        args=list(command),
    )


class ForkServerProcess:
    """A fork server started by this process, ended with it, on a socket in ``folder`` or in a private
    temporary folder of its own (removed when it stops)."""

    def __init__(self, folder: Path | None = None):
        self._own_folder = folder is None
        self.socket_path = (folder or Path(tempfile.mkdtemp(prefix="tricklab-fork-server-"))) / "trainer.sock"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainer.fork_server", str(self.socket_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl, before exec
        )
        self._ready: bool | None = None

    def ready(self, timeout: float = READY_SECONDS) -> bool:
        """Whether it listens, waiting while it imports the trainer (it says so on its stdout)."""
        if self._ready is None:
            assert self.process.stdout is not None
            readable, _, _ = select.select([self.process.stdout], [], [], timeout)
            self._ready = bool(readable) and self.process.stdout.readline().strip() == LISTENING
            if not self._ready:
                log.warning("the trainer fork server did not start; trainers are started without it")
        return self._ready

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._own_folder:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)
