"""AF_PACKET sockets inside a network namespace, with batched sendmmsg /
recvmmsg through ctypes (Python's stdlib has neither).

A socket belongs to the namespace it was created in, so `open_in_netns`
enters the namespace in a short-lived thread (setns(2) changes only the
calling thread), creates and binds the socket there and returns it; the
rest of the process never leaves the root namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
MSG_DONTWAIT = 0x40
FRAME_MAX = 2048

_libc = ctypes.CDLL(None, use_errno=True)


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int]
_libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int,
                           ctypes.c_void_p]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def open_in_netns(netns: str, ifname: str, rcvbuf: int = 8 << 20) -> socket.socket:
    """A raw AF_PACKET socket bound to `ifname` of netns `netns` (as in
    /run/netns), not seeing its own transmissions."""
    out: list = []

    def make() -> None:          # runs in its own thread: setns affects it alone
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            s.bind((ifname, ETH_P_ALL))
            s.setblocking(False)
            out.append(s)
        except BaseException as e:     # handed to the caller's thread
            out.append(e)

    t = threading.Thread(target=make, name=f"netns-{ifname}")
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def drops(sock: socket.socket) -> tuple[int, int]:
    """(packets, drops) the kernel counted for the socket since the last
    call (PACKET_STATISTICS resets on read)."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    return struct.unpack("II", raw)


def _msg_vector(bufs: list, size: int):
    """(iovec array, mmsghdr array) with one iovec per buffer of `size` bytes."""
    iov = (_Iovec * len(bufs))()
    msgs = (_Mmsghdr * len(bufs))()
    for i, b in enumerate(bufs):
        iov[i].iov_base = ctypes.addressof(b)
        iov[i].iov_len = size
        msgs[i].msg_hdr.msg_iov = ctypes.pointer(iov[i])
        msgs[i].msg_hdr.msg_iovlen = 1
    return iov, msgs


class Batch:
    """`n` frame slots of one template, sent together with one sendmmsg.
    Slot i is patched in place (a ctypes buffer: struct.pack_into works on it)."""

    def __init__(self, template: bytes, n: int = 64) -> None:
        self.n = n
        size = len(template)
        self.bufs = [ctypes.create_string_buffer(bytes(template), size) for _ in range(n)]
        self.views = [memoryview(b).cast("B") for b in self.bufs]
        self.iov, self.msgs = _msg_vector(self.bufs, size)

    def send(self, sock: socket.socket, count: int) -> int:
        """Send slots 0..count-1; returns how many the kernel took."""
        if count <= 0:
            return 0
        r = _libc.sendmmsg(sock.fileno(), self.msgs, count, 0)
        if r < 0:
            err = ctypes.get_errno()
            if err in (11, 105):          # EAGAIN / ENOBUFS: the caller retries later
                return 0
            raise OSError(err, os.strerror(err))
        return r


class Receiver:
    """recvmmsg into `n` preallocated buffers; recv() returns the frames of
    one call as memoryviews valid until the next call."""

    def __init__(self, n: int = 64) -> None:
        self.n = n
        self.bufs = [ctypes.create_string_buffer(FRAME_MAX) for _ in range(n)]
        self.views = [memoryview(b).cast("B") for b in self.bufs]
        self.iov, self.msgs = _msg_vector(self.bufs, FRAME_MAX)

    def recv(self, sock: socket.socket) -> list[memoryview]:
        r = _libc.recvmmsg(sock.fileno(), self.msgs, self.n, MSG_DONTWAIT, None)
        if r <= 0:
            return []
        msgs, views = self.msgs, self.views
        return [views[i][:msgs[i].msg_len] for i in range(r)]
