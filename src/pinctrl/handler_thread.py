"""The pinctrl_handler thread (OVN's "ovn_pinctrl" thread).

Owns the OpenFlow connection to <ovs rundir>/<br-int>.mgmt: connects with
backoff, redoes the set-up on every (re)connection, dispatches packet-ins
by opcode and sends the replies.  It never touches the OVSDB IDL:
everything it needs from the Southbound DB arrives through SharedState,
built by the main thread.

The loop is built for batches (docs/architecture.md, "Packet-in path"):
one LoopPoller for the life of the thread, so the socket, the Seq and the
exit latch are registered once; each wake-up reads what the socket holds
into OfConn's buffer, handles every complete message in it (as memoryviews:
the fast path reads them in place, the reference path copies one message),
runs the jobs, and writes all the replies in one send().  The heartbeat,
the latency histogram and the coverage counters are updated per batch.
"""

from __future__ import annotations

import struct
import threading
import time

import ovs.timeval
import ovs.vlog

from pinctrl.actions import REGISTRY, Action
from pinctrl.handler import dispatch
from pinctrl.handler import jobs as handler_jobs
from pinctrl.handler.buffered_packets import BufferedPackets
from pinctrl.handler.latency import DispatchLatency
from pinctrl.handler.poll_loop import LoopPoller
from pinctrl.handler.templates import FastPath
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow import packet_in
from pinctrl.openflow.conn import OfConn
from pinctrl.shared.seq import Latch
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log
from pinctrl.support.threadloop import run_until_exit

vlog = ovs.vlog.Vlog("pinctrl")

HEARTBEAT_MS = 1000         # wake at least this often to prove liveness
THREAD_NAME = "ovn_pinctrl"  # as OVN's; keep-alive and pinctrl/show use it
NX_VENDOR_ID = 0x00002320
NXT_PACKET_IN2 = 30
_EXP_HDR = struct.Struct("!II")
_NX_PACKET_IN2 = (NX_VENDOR_ID, NXT_PACKET_IN2)

OFPT_ERROR = 1
OFPT_ECHO_REQUEST = 2
OFPT_EXPERIMENTER = 4
OFPT_GET_CONFIG_REPLY = 8


def _name_thread() -> None:
    """pinctrl_handler thread: name the OS thread THREAD_NAME, as OVN's
    (top -H, /proc/<pid>/task/*/comm: its CPU readable from outside)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm",
                  "w") as f:
            f.write(THREAD_NAME)
    except OSError:
        pass


class ExitFlag:
    """stop()'s request: a bool the loop reads for free each pass, and a
    latch that wakes the poll it may be blocked in."""

    __slots__ = ("_set", "latch")

    def __init__(self) -> None:
        self._set = False           # written by the main thread, once
        self.latch = Latch()

    def set(self) -> None:
        """Any thread."""
        self._set = True
        self.latch.set()

    def is_set(self) -> bool:
        return self._set

    def wait(self, poller: LoopPoller) -> None:
        self.latch.wait(poller)


class PinctrlHandler:
    """The handler thread and the state only it touches."""

    def __init__(self, shared: SharedState, ovs_rundir: str,
                 probe_interval_ms: int = 0,
                 latency: DispatchLatency | None = None,
                 registry: dict[int, Action] | None = None) -> None:
        """'latency' is fed by this thread and read by others (the daemon
        keeps one across handler restarts).  'registry': the actions to
        dispatch to (default: all; split mode passes its own)."""
        self.shared = shared
        self.ovs_rundir = ovs_rundir
        self.exit_latch = ExitFlag()
        # Only this thread uses 'conn', 'env' and 'poller'; the main thread
        # reads conn.state / conn.n_connects and 'heartbeat' for display.
        self.conn = OfConn(ovs.timeval.msec(), probe_interval_ms)
        self.poller = LoopPoller()
        self.buffered_packets = BufferedPackets(self.conn.next_xid, shared)
        self.env = dispatch.Env(self.conn.next_xid, shared,
                                self.buffered_packets)
        # Periodic jobs (pinctrl.handler_jobs), read once per loop by this
        # thread; add_job() swaps in a new list, never changes this one.
        self.registry = registry if registry is not None else REGISTRY
        self.jobs = handler_jobs.make_jobs(shared, self.buffered_packets,
                                           self.env, self.registry)
        self.latency = latency if latency is not None else DispatchLatency()
        self.fast_path = FastPath(self.env, self.registry)
        # time.monotonic() of the last loop; written by this thread (one
        # float store), read by the keep-alive monitor (main thread).
        self.heartbeat = 0.0
        self._conn_seqno = 0
        self._seen_seq: int | None = None   # handler_seq acted on
        self._target: str | None = None
        self._rl = RateLimit(5, 10)
        self.thread = threading.Thread(target=self._main, name=THREAD_NAME)

    # --- called by the main thread ------------------------------------------
    def start(self) -> None:
        """Main thread: start the pinctrl_handler thread."""
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Main thread: ask the thread to exit and join it."""
        self.exit_latch.set()
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        """Any thread."""
        return self.thread.is_alive()

    def add_job(self, job: handler_jobs.HandlerJob) -> None:
        """Main thread: run 'job' from the next loop on.  A new list,
        swapped in by one assignment: the handler reads 'jobs' once per
        loop and never sees a list being changed."""
        self.jobs = [*self.jobs, job]
        self.shared.handler_seq.change()

    # --- read by other threads (display, metrics) --------------------------------
    def buffered_packets_summary(self) -> tuple[int, int]:
        """Any thread: (next hops awaited, frames buffered); two int
        reads of the handler-private buffer."""
        return self.buffered_packets.summary()

    def openflow_tx_bytes(self) -> int:
        """Any thread: bytes queued for the switch, not yet written."""
        return self.conn.tx_bytes

    # --- the thread -------------------------------------------------------------
    def _main(self) -> None:
        """pinctrl_handler thread: loop until stop()."""
        vlog.info("pinctrl handler thread started")
        _name_thread()
        run_until_exit(self.exit_latch, self._run_once, "handler",
                       "pinctrl_handler_loop_exception", vlog, self._rl)
        self.conn.set_target(None, ovs.timeval.msec())
        vlog.info("pinctrl handler thread exiting")

    def _run_once(self) -> None:
        """pinctrl_handler thread: one run/wait/block round."""
        poller, conn = self.poller, self.conn
        now = ovs.timeval.msec()
        self.heartbeat = time.monotonic()
        seq = self.shared.handler_seq
        seen = seq.read()
        if seen != self._seen_seq:
            # The bridge name changes only with handler_seq: read it (under
            # the mutex) only then.
            self._seen_seq = seen
            with self.shared.mutex:
                br_int = self.shared.br_int_name
            self._target = (f"unix:{self.ovs_rundir}/{br_int}.mgmt"
                            if br_int else None)
        conn.set_target(self._target, now)
        conn.run(now)

        if conn.negotiated:
            if self._conn_seqno != conn.seqno:
                self._conn_seqno = conn.seqno
                self._setup()
            offsets = conn.receive(now)
            if offsets:
                self._batch(offsets, now)
                now = ovs.timeval.msec()
            for job in self.jobs:
                replies = job.run(self.env, now)
                if replies:
                    conn.send_batch(list(replies))
            conn.flush(now)

            # Jobs run only while connected: their deadlines (past ones
            # included) matter only then.  Armed while disconnected, a past
            # one spins the thread for the whole outage (issue 15 #3).
            for job in self.jobs:
                job.wait(poller, now)
        conn.wait(poller, now)
        poller.timer_wait(HEARTBEAT_MS)
        seq.wait(poller, seen)
        self.exit_latch.wait(poller)
        poller.block()

    def _setup(self) -> None:
        """On every (re)connection (OVN pinctrl_setup): ask for the switch
        config (answered by SET_CONFIG) and for NXT_PACKET_IN2
        (pinctrl_handler thread)."""
        self.conn.send(ofmsg.get_config_request(self.conn.next_xid()))
        self.conn.send(ofmsg.set_packet_in_format(self.conn.next_xid()))

    def _batch(self, offsets: list[int], now: int) -> None:
        """pinctrl_handler thread: every complete message of this wake-up,
        rx_view[offsets[i]:offsets[i + 1]]; their replies are queued
        together, in order.  A packet-in goes to the templates first
        (handler/templates), to the reference path if they miss it.  The
        templates' answers are timed as a batch: each is filed in the
        latency histogram with the batch's mean."""
        view = self.conn.rx_view
        unpack = _EXP_HDR.unpack_from
        fast = self.fast_path
        out: list[bytes] = []
        fast.out = out
        t0 = time.perf_counter()
        t_ref = 0.0
        start = offsets[0]
        for end in offsets[1:]:
            if (view[start + 1] == OFPT_EXPERIMENTER and end - start >= 16
                    and unpack(view, start + 8) == _NX_PACKET_IN2):
                if fast.answer(view, start, end, now) < 0:
                    t_ref += self._packet_in(bytes(view[start:end]), now, out)
            else:
                self._recv(bytes(view[start:end]))
            start = end
        answered = fast.end_batch()
        if answered:
            mean = ((time.perf_counter() - t0 - t_ref)
                    / sum(answered.values()))
            for opcode, n in answered.items():
                self.latency.observe_many(opcode, n, mean)
        self.conn.send_batch(out)

    def _recv(self, msg: bytes) -> None:
        """pinctrl_handler thread: one message from the switch other than
        a packet-in."""
        msg_type = msg[1]
        if msg_type == OFPT_ECHO_REQUEST:
            self.conn.send(ofmsg.echo_reply(msg))
            return
        elif msg_type == OFPT_GET_CONFIG_REPLY and len(msg) >= 12:
            flags = struct.unpack_from("!H", msg, 8)[0]
            self.conn.send(ofmsg.set_config(self.conn.next_xid(), flags))
            return
        elif msg_type == OFPT_ERROR:
            coverage.inc("pinctrl_rx_of_error")
            rl_log(vlog, "dbg", self._rl,
                   f"OpenFlow error from switch: {msg[:64].hex()}")
            return
        coverage.inc("pinctrl_rx_of_ignored")

    def _packet_in(self, msg: bytes, now: int, out: list[bytes]) -> float:
        """pinctrl_handler thread: the reference path for one packet-in:
        decode, dispatch, time; its replies are appended to 'out'.
        Returns the seconds it took."""
        t0 = time.perf_counter()
        try:
            pin = packet_in.decode_packet_in2(msg)
        except packet_in.PacketInError as e:
            coverage.inc("pinctrl_drop_bad_packet_in")
            rl_log(vlog, "warn", self._rl, f"bad packet-in: {e}")
            return time.perf_counter() - t0
        t1 = time.perf_counter()
        out += dispatch.process_packet_in(pin, self.env, now, self.registry)
        t2 = time.perf_counter()
        self.latency.observe(pin, t2 - t1)
        return t2 - t0
