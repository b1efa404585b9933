"""``python -m trainer.fork_server SOCKET``: a process that has imported PyTorch, torchvision and the
trainer once, and forks a trainer child for each launch a worker asks for on a Unix socket.

Importing the trainer costs seconds of CPU on every ``python -m trainer run``; a forked child starts
with it done. The server stays single-threaded and never touches CUDA, so a fork is as safe here as
a data loader's. Each child gets what ``subprocess.Popen`` would have given it: a session of its own,
the worker's pipes as stdout and stderr, its environment and folder, and SIGKILL when the server
dies. A worker that goes away (its connection closes) takes its child's process group with it.

The protocol and the worker's side are in ``trainer.forked``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import torch

# The point of this process: its children start with the trainer imported.
from trainer.cli import run_main
from trainer.forked import IMPORT_TIME_ENV, LISTENING, MAX_MESSAGE_BYTES, forkable_argv
from trainer.processes import die_with_parent

REAP_SECONDS = 0.2


class ForkServer:
    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.pending: set[socket.socket] = set()  # connected, no launch asked yet
        self.child_of: dict[socket.socket, int] = {}
        self.connection_of: dict[int, socket.socket] = {}
        self.stopping = False

    def serve(self) -> list[str] | None:
        """Launch until stopped (None); in a forked child, return at once with the trainer's arguments."""
        while not self.stopping:
            readable, _, _ = select.select([self.listener, *self.pending, *self.child_of], [], [], REAP_SECONDS)
            for ready in readable:
                if ready is self.listener:
                    connection, _ = self.listener.accept()
                    self.pending.add(connection)
                elif ready in self.pending:
                    trainer_argv = self._launch(ready)
                    if trainer_argv is not None:
                        return trainer_argv
                else:
                    self._gone(ready)
            self._reap()
        for pid in list(self.connection_of):
            _kill_group(pid)
        return None

    def _launch(self, connection: socket.socket) -> list[str] | None:
        """Fork the child ``connection`` asks for; in that child, its trainer's arguments."""
        self.pending.discard(connection)
        message, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE_BYTES, 2)
        if not message or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            connection.close()
            return None
        request = json.loads(message)
        refusal = _refusal(request)
        if refusal is not None:
            for fd in fds:
                os.close(fd)
            _reply(connection, {"refused": refusal})
            connection.close()
            return None
        # The pid is answered once the child leads its own session, as Popen returns after exec: a stop
        # that follows at once finds its process group.
        settled, settling = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(settled)
            self._become_child(connection, request, fds, settling)
            return forkable_argv(request["command"])
        os.close(settling)
        os.read(settled, 1)
        os.close(settled)
        for fd in fds:
            os.close(fd)
        self.child_of[connection] = pid
        self.connection_of[pid] = connection
        _reply(connection, {"pid": pid})
        return None

    def _become_child(self, connection: socket.socket, request: dict[str, Any], fds: list[int], settling: int) -> None:
        """In the forked child: become what ``Popen`` would have started, short of the trainer's run."""
        try:
            os.setsid()
            die_with_parent(os.getppid())()
            os.write(settling, b"1")
            os.close(settling)
            for inherited in [self.listener, connection, *self.pending, *self.child_of]:
                inherited.close()
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(number, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in (null, *fds):
                os.close(fd)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
            sys.stdout = io.TextIOWrapper(
                io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace", write_through=True
            )
            sys.stderr = io.TextIOWrapper(
                io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
            )
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
        except BaseException:  # noqa: BLE001 - a child that cannot be set up ends here, never in the server's loop
            with contextlib.suppress(Exception):
                traceback.print_exc()
            os._exit(1)

    def _gone(self, connection: socket.socket) -> None:
        """A worker closed its connection before its child ended: the child's group goes too."""
        with contextlib.suppress(OSError):
            if connection.recv(1):
                return
        pid = self.child_of.pop(connection)
        connection.close()
        _kill_group(pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.connection_of.pop(pid, None)
            if connection is not None and self.child_of.pop(connection, None) is not None:
                ended = {
                    "returncode": os.waitstatus_to_exitcode(status),
                    "cpu_seconds": usage.ru_utime + usage.ru_stime,
                }
                with contextlib.suppress(OSError):
                    _reply(connection, ended)
                connection.close()


def _refusal(request: dict[str, Any]) -> str | None:
    """Why this server cannot start the request as its own exec would, or None."""
    if forkable_argv(request["command"]) is None:
        return f"not this server's trainer command: {request['command'][:4]}"
    differing = [name for name in IMPORT_TIME_ENV if request["env"].get(name) != os.environ.get(name)]
    if differing:
        return f"{', '.join(differing)} differ(s) from the fork server's, and are read when PyTorch is imported"
    return None


def _reply(connection: socket.socket, payload: dict[str, Any]) -> None:
    connection.send(json.dumps(payload).encode())


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    (socket_path,) = argv if argv is not None else sys.argv[1:]
    # A child cannot use CUDA once its parent has (CUDA refuses to re-initialise in a forked process).
    unsafe = (
        "started threads"
        if threading.active_count() != 1
        else "initialised CUDA"
        if torch.cuda.is_initialized()
        else None
    )
    if unsafe is not None:
        print(f"trainer.fork_server: importing the trainer {unsafe}; forking is not safe", file=sys.stderr)
        return 1
    path = Path(socket_path)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Bound under a temporary name and renamed: a worker that sees the path finds it listening.
    staging = path.with_name(path.name + ".binding")
    staging.unlink(missing_ok=True)
    listener.bind(str(staging))
    os.chmod(staging, 0o600)
    listener.listen(64)
    os.replace(staging, path)
    print(LISTENING, flush=True)
    server = ForkServer(listener)

    def stop(*_: Any) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server_pid = os.getpid()
    try:
        trainer_argv = server.serve()
    finally:
        if os.getpid() == server_pid:
            path.unlink(missing_ok=True)
    if trainer_argv is None:
        return 0
    # A forked child: the trainer runs as this process's main, and the interpreter ends it as it ends an
    # exec'd one (exit handlers, threads joined, streams flushed).
    sys.argv = [str(Path(__file__).with_name("__main__.py")), *trainer_argv]
    return run_main(trainer_argv)


if __name__ == "__main__":
    raise SystemExit(main())
