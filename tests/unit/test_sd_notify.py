"""The systemd notify protocol, with a real AF_UNIX datagram socket standing
in for systemd (path and abstract '@' addresses)."""

import os
import socket
import uuid

import pytest

from pinctrl.daemon.sd_notify import (
    Notifier,
    format_message,
    socket_address,
    watchdog_usec,
)
from tests.helpers import counted


@pytest.fixture
def systemd(tmp_path):
    """(NOTIFY_SOCKET value, receiving socket) for a filesystem socket."""
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(1.0)
    yield path, s
    s.close()


@pytest.fixture
def abstract_systemd():
    name = f"pinctrl-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name.encode())
    s.settimeout(1.0)
    yield "@" + name, s
    s.close()


def test_socket_address_forms():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"
    assert socket_address("") is None
    assert socket_address("relative/path") is None
    assert socket_address("vsock:2:1234") is None


@pytest.mark.parametrize("env, pid, want", [
    ({"WATCHDOG_USEC": "30000000"}, 42, 30000000),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42, 30000000),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, 42, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, 42, None),
    ({"WATCHDOG_USEC": "0"}, 42, None),
    ({"WATCHDOG_USEC": "-5"}, 42, None),
    ({"WATCHDOG_USEC": "soon"}, 42, None),
    ({}, 42, None),
])
def test_watchdog_usec(env, pid, want):
    assert watchdog_usec(env, pid) == want


def test_format_message_joins_fields_and_flattens_newlines():
    assert format_message(READY=1, STATUS="a\nb") == b"READY=1\nSTATUS=a b"


def test_without_notify_socket_everything_is_a_no_op():
    n = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled
    assert n.watchdog_interval() is None      # no socket: nobody to feed
    assert n.ready("x") is False
    assert n.watchdog() is False
    assert n.stopping() is False


def test_ready_status_watchdog_stopping_reach_the_socket(systemd):
    path, s = systemd
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000",
                  "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_interval() == 1.5
    assert n.ready("all good")
    assert s.recv(4096) == b"READY=1\nSTATUS=all good"
    assert n.status("still good")
    assert s.recv(4096) == b"STATUS=still good"
    assert n.status("still good") is False        # unchanged: not re-sent
    assert n.watchdog()
    assert s.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert s.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    n.close()


def test_abstract_socket(abstract_systemd):
    name, s = abstract_systemd
    n = Notifier({"NOTIFY_SOCKET": name})
    assert n.watchdog_interval() is None
    assert n.notify(STATUS="hello")
    assert s.recv(4096) == b"STATUS=hello"
    n.close()


def test_watchdog_meant_for_another_pid_is_ignored(systemd):
    path, _ = systemd
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000",
                  "WATCHDOG_PID": "1"}, pid=2)
    assert n.enabled and n.watchdog_interval() is None


def test_send_failure_is_counted_not_raised(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert counted(lambda: n.watchdog(), "sd_notify_send_error") is False
    n.close()
