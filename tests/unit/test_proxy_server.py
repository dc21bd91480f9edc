"""proxy/server.py: the listener and thread, with a fake switch (a unix
socket this test accepts on) instead of ovs-vswitchd."""

from __future__ import annotations

import os
import socket

import pytest

from pinctrl.proxy.ownership import Ownership
from pinctrl.proxy.server import (OfProxy, ProxyConfig, ProxyError,
                                  mgmt_paths)
from tests.helpers import counter_delta

HELLO = bytes.fromhex("06000010000000040001000800000040")
OWNERSHIP = Ownership(frozenset({2}), {2: "put_dhcp_opts", 16: "igmp"})


def _listen(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    s.settimeout(5.0)
    return s


def _connect(path: str) -> socket.socket:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5.0)
    c.connect(path)
    return c


@pytest.fixture
def dirs(tmp_path):
    ovs, proxy = tmp_path / "ovs", tmp_path / "proxy"
    ovs.mkdir()
    return str(ovs), str(proxy)


@pytest.fixture
def proxy(dirs):
    listen, upstream = mgmt_paths(dirs[1], dirs[0], "br-int")
    p = OfProxy(ProxyConfig(listen, upstream, OWNERSHIP))
    p.open()
    p.start()
    yield p
    p.stop()


def test_paths_and_the_same_directory_refused(dirs, tmp_path):
    ovs, proxy = dirs
    assert mgmt_paths(proxy, ovs, "br-x") == (f"{proxy}/br-x.mgmt",
                                              f"{ovs}/br-x.mgmt")
    with pytest.raises(ProxyError, match="is the OVS run directory"):
        mgmt_paths(ovs + "/", ovs, "br-int")


def test_splices_ovn_controller_to_the_switch(proxy, dirs):
    switch = _listen(f"{dirs[0]}/br-int.mgmt")
    try:
        ctl = _connect(proxy.config.listen_path)
        sw, _ = switch.accept()
        sw.settimeout(5.0)
        ctl.sendall(HELLO)
        assert sw.recv(100) == HELLO
        sw.sendall(HELLO)
        assert ctl.recv(100) == HELLO
        assert [s.sid for s in proxy.sessions()] == [1]
        text = "\n".join(proxy.show())
        assert "1 open, 1 accepted, 0 closed at once" in text
        assert "passed to ovn-controller: igmp(16)" in text
        assert "#1 unknown" in text
        # The switch goes away: ovn-controller's connection ends too.
        sw.close()
        assert ctl.recv(100) == b""
        ctl.close()
    finally:
        switch.close()


def test_switch_unreachable_closes_the_new_connection_at_once(proxy):
    def attempt():
        ctl = _connect(proxy.config.listen_path)
        try:
            return ctl.recv(100)
        finally:
            ctl.close()
    out, n = counter_delta("ofproxy_upstream_unreachable", attempt)
    assert out == b"" and n == 1
    assert proxy.n_unreachable == 1
    assert "closed at once (switch unreachable: No such file or " \
        "directory)" in "\n".join(proxy.show())


def test_stop_closes_sessions_and_removes_the_socket(dirs):
    listen, upstream = mgmt_paths(dirs[1], dirs[0], "br-int")
    switch = _listen(upstream)
    p = OfProxy(ProxyConfig(listen, upstream, OWNERSHIP))
    p.open()
    p.start()
    try:
        ctl = _connect(listen)
        sw, _ = switch.accept()
        sw.settimeout(5.0)
        p.stop()
        assert not p.is_alive()
        assert ctl.recv(10) == b"" and sw.recv(10) == b""
        assert not os.path.exists(listen)
        ctl.close()
        sw.close()
    finally:
        p.stop()
        switch.close()


def test_stale_socket_is_replaced_a_live_one_is_not(dirs):
    listen, upstream = mgmt_paths(dirs[1], dirs[0], "br-int")
    os.makedirs(dirs[1])
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(listen)              # bound, never listening: kill -9 left it
    stale.close()
    p = OfProxy(ProxyConfig(listen, upstream, OWNERSHIP))
    p.open()
    try:
        other = OfProxy(ProxyConfig(listen, upstream, OWNERSHIP))
        with pytest.raises(ProxyError, match="another process is listening"):
            other.open()
    finally:
        p.stop()


def test_a_file_that_is_not_a_socket_is_left_alone(dirs):
    listen, upstream = mgmt_paths(dirs[1], dirs[0], "br-int")
    os.makedirs(dirs[1])
    with open(listen, "w") as f:
        f.write("not mine")
    with pytest.raises(ProxyError, match="not a socket"):
        OfProxy(ProxyConfig(listen, upstream, OWNERSHIP)).open()
    with open(listen) as f:
        assert f.read() == "not mine"
