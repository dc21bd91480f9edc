"""A slow Southbound (issue 15): its replies delayed by 0.75 of the
inactivity probe interval, through a delaying proxy between the daemon and
the sandbox's SB server.  The connection must hold (no probe timeout, one
connection), writes land, DHCP and DNS are answered.

The proxy is a thread of the test process: a unix socket in the sandbox
that forwards to the SB's, holding each server -> client chunk for the
delay.  It stops with the test.
"""

from __future__ import annotations

import heapq
import os
import selectors
import socket
import threading
import time

import pytest

from testbed.golden import replay_exchange
from tests.integration.test_faults import learn, missing_bindings, soak_record
from tests.integration.test_flood import dhcp_answered
from tests.integration.test_sb_ssl_cluster import sb_serving, wait_show

pytestmark = pytest.mark.integration

PROBE_MS = 2000
DELAY_S = 0.75 * PROBE_MS / 1000


class DelayingProxy:
    """unix:'path' -> unix:'upstream'; server -> client bytes are held
    'delay' seconds.  One thread; close() stops it."""

    def __init__(self, path: str, upstream: str, delay: float) -> None:
        self.path, self.upstream, self.delay = path, upstream, delay
        self.accepted = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        peer: dict[socket.socket, socket.socket] = {}
        held: list[tuple[float, int, socket.socket, bytes]] = []
        n = 0
        while not self._stop.is_set():
            timeout = 0.05
            if held:
                timeout = max(0.0, min(timeout, held[0][0] - time.monotonic()))
            for key, _ in sel.select(timeout):
                s = key.fileobj
                if s is self.listener:
                    client, _ = self.listener.accept()
                    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    server.connect(self.upstream)
                    peer[client], peer[server] = server, client
                    sel.register(client, selectors.EVENT_READ, "c")
                    sel.register(server, selectors.EVENT_READ, "s")
                    self.accepted += 1
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for x in (s, peer[s]):
                        sel.unregister(x)
                        x.close()
                    other = peer.pop(s)
                    peer.pop(other, None)
                    continue
                if key.data == "s":     # server -> client: held
                    n += 1
                    heapq.heappush(held, (time.monotonic() + self.delay, n,
                                          peer[s], data))
                else:
                    peer[s].sendall(data)
            while held and held[0][0] <= time.monotonic():
                _, _, dst, data = heapq.heappop(held)
                try:
                    dst.sendall(data)
                except OSError:
                    pass
        for s in list(peer):
            s.close()
        self.listener.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)


def test_sb_replies_delayed_near_the_probe_interval(sandbox):
    sandbox.vsctl("set", "open", ".",
                  f"external_ids:ovn-remote-probe-interval={PROBE_MS}")
    path = f"{sandbox.dir}/slow-sb.sock"
    proxy = DelayingProxy(path, f"{sandbox.dir}/ovnsb_db.sock", DELAY_S)
    d = sandbox.daemon(extra_args=["--ovnsb-db", f"unix:{path}"])
    try:
        d.start(timeout=20)
        with soak_record("slow_sb", d, bindings_lost=None) as rec:
            rec["faults"] = 1
            wait_show(d, sb_serving, 20, "SB through the slow proxy")
            connections = proxy.accepted    # the schema fetch's, the IDL's
            ids = range(20)
            learn(sandbox, ids)
            t0 = time.monotonic()
            missing = missing_bindings(sandbox, ids)
            rec.update(bindings=len(ids), bindings_lost=len(missing),
                       write_s=round(time.monotonic() - t0, 2))
            assert not missing
            t_end = time.monotonic() + 3 * PROBE_MS / 1000
            while time.monotonic() < t_end:
                assert dhcp_answered(sandbox, attempts=3)
                replay_exchange(sandbox, "dns_a_hit")
            log = open(d.log_file).read()
            assert "no response to inactivity probe" not in log, log[-3000:]
            assert proxy.accepted == connections, "the connection dropped"
            assert sb_serving(dict(
                l.split(": ", 1) for l in d.show().splitlines()
                if ": " in l))
    finally:
        d.stop()
        proxy.close()
