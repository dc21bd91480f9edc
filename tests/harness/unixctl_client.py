"""A persistent unixctl (JSON-RPC over a unix socket) client for tests.

`ovs-appctl` costs a process per call (~5 ms); floods inject thousands of
frames, so this keeps one connection to a daemon's .ctl socket and can
pipeline requests: send a batch, then read the batch's replies.

    with UnixctlClient(sb.vswitchd_ctl) as c:
        c.inject_many("gdvif1", frames)          # netdev-dummy/receive
        print(c.call("coverage/show"))

Used from the test process only (one thread per client).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Iterable


class UnixctlError(RuntimeError):
    """The server answered with an error, or the connection broke."""


class UnixctlClient:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buf = b""
        self._next_id = 0
        self._decoder = json.JSONDecoder()

    def __enter__(self) -> "UnixctlClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _send(self, method: str, params: list[str]) -> int:
        self._next_id += 1
        self.sock.sendall(json.dumps({"method": method, "params": params,
                                      "id": self._next_id}).encode())
        return self._next_id

    def _recv(self) -> dict:
        while True:
            text = self._buf.lstrip().decode("utf-8", "replace")
            if text:
                try:
                    obj, end = self._decoder.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self._buf = text[end:].encode()
                    return obj
            chunk = self.sock.recv(65536)
            if not chunk:
                raise UnixctlError(f"{self.path}: connection closed")
            self._buf += chunk

    def call(self, method: str, *params: str) -> str:
        """One command; its text answer.  Raises UnixctlError on error."""
        self._send(method, list(params))
        reply = self._recv()
        if reply.get("error") is not None:
            raise UnixctlError(f"{method}: {reply['error']}")
        return reply.get("result") or ""

    def timed_call(self, method: str, *params: str) -> tuple[str, float]:
        """(answer, seconds it took)."""
        t0 = time.monotonic()
        out = self.call(method, *params)
        return out, time.monotonic() - t0

    def inject_many(self, port: str, frames: Iterable[bytes | str],
                    batch: int = 64) -> int:
        """netdev-dummy/receive every frame on 'port'; see inject."""
        return self.inject(((port, f) for f in frames), batch)

    def inject(self, frames: Iterable[tuple[str, bytes | str]],
               batch: int = 64) -> int:
        """netdev-dummy/receive each (port, frame), at most 'batch'
        requests in flight (more, and the server stops reading while its
        replies wait); returns how many were accepted."""
        ok = pending = 0

        def drain(n: int) -> int:
            return sum(self._recv().get("error") is None for _ in range(n))

        for port, f in frames:
            self._send("netdev-dummy/receive",
                       [port, f if isinstance(f, str) else f.hex()])
            pending += 1
            if pending >= batch:
                ok += drain(pending)
                pending = 0
        return ok + drain(pending)
