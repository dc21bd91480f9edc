"""daemon/split_mode.py: the options, the ownership the daemon hands to the
proxy, the registry its handler dispatches with, and the proxy's place in
pinctrl/show and the keep-alive."""

from __future__ import annotations

import dataclasses
import os

import pytest

from pinctrl.actions import REGISTRY, load_all
from pinctrl.actions.not_yet import NOT_IMPLEMENTED
from pinctrl.actions.replies import Resume
from pinctrl.daemon import cli, split_mode
from pinctrl.daemon.keepalive import KeepAlive
from pinctrl.daemon.show import format_show
from pinctrl.handler import dispatch
from testbed.golden import load_exchange, packet_in_from_hex
from tests.helpers import counter_delta
from tests.unit.test_show import REPORT


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_take_over_mode_is_the_default():
    """Without options the daemon owns what it implements (at least these
    common ones) and passes what it does not."""
    args = parse()
    assert args.proxy_rundir is None
    own = split_mode.ownership(args)
    assert set(NOT_IMPLEMENTED) <= set(own.passed())
    assert {0, 1, 2, 6, 10, 11} <= own.owned


def test_options_repeat_and_combine():
    default = split_mode.ownership(parse("--proxy-rundir", "/run/p"))
    args = parse("--proxy-rundir", "/run/p", "--pass-opcodes", "dns_lookup",
                 "--pass-opcodes", "2", "--own-opcodes", "igmp")
    own = split_mode.ownership(args)
    assert set(own.passed()) == set(default.passed()) - {16} | {2, 6}
    assert own.owns(16)


@pytest.mark.parametrize("argv, text", [
    (("--pass-opcodes", "dns_lookup"), "need --proxy-rundir"),
    (("--proxy-rundir", "/run/p", "--own-opcodes", "dhcp"),
     "unknown opcode 'dhcp'"),
])
def test_bad_split_options_are_startup_errors(argv, text):
    with pytest.raises(split_mode.SplitModeError, match=text):
        split_mode.ownership(parse(*argv))


def test_proxy_rundir_must_not_be_the_ovs_rundir(tmp_path):
    args = parse("--ovs-rundir", str(tmp_path), "--proxy-rundir",
                 str(tmp_path))
    with pytest.raises(split_mode.SplitModeError, match="OVS run directory"):
        split_mode.SplitMode(args, split_mode.ownership(args))


def _golden_pin(name: str):
    rec = next(r for s in load_exchange(name)["steps"]
               for r in s["openflow_pinctrl"] if r["msg"] == "NXT_PACKET_IN2")
    return packet_in_from_hex(rec["hex"])


def test_handler_registry_leaves_passed_opcodes_to_ovn_controller():
    """A passed opcode keeps its name, is counted, and is neither answered
    nor resumed (ovn-controller resumes it); owned ones are untouched."""
    load_all()
    own = split_mode.ownership(parse("--proxy-rundir", "/run/p",
                                     "--pass-opcodes", "put_dhcp_opts"))
    reg = split_mode.handler_registry(own)
    assert reg[6] is REGISTRY[6] and reg.keys() == REGISTRY.keys()
    assert reg[2].name == "put_dhcp_opts" and not reg[2].pause
    pin = _golden_pin("dhcpv4_discover_offer")
    env = dispatch.Env()
    out, n = counter_delta("pinctrl_passed_put_dhcp_opts",
                           lambda: dispatch.process_packet_in(pin, env, 0,
                                                              reg))
    assert out == [] and n == 1
    # The same packet-in with the daemon's own registry is answered.
    assert len(dispatch.process_packet_in(pin, env, 0, REGISTRY)) == 1
    assert isinstance(REGISTRY[2].handler(pin), Resume)


def test_split_mode_listens_registers_its_thread_and_shows(tmp_path):
    ovs_dir, proxy_dir = tmp_path / "ovs", tmp_path / "proxy"
    ovs_dir.mkdir()
    args = parse("--ovs-rundir", str(ovs_dir), "--proxy-rundir",
                 str(proxy_dir))
    sm = split_mode.SplitMode(args, split_mode.ownership(args))
    ka = KeepAlive(5.0, clock=lambda: 100.0)
    sm.start(ka, 100.0)
    try:
        assert os.path.exists(proxy_dir / "br-int.mgmt")
        names = [h.name for h in ka.check(100.0)]
        assert split_mode.THREAD_NAME in names
        lines = sm.show_lines()
        assert lines[0].startswith(
            f"Split mode: ovn-controller connects to {proxy_dir}/br-int.mgmt")
    finally:
        sm.stop()
    assert not os.path.exists(proxy_dir / "br-int.mgmt")


def test_show_appends_the_split_mode_lines():
    text = format_show(dataclasses.replace(
        REPORT, split_mode=("Split mode: x", "  y")))
    assert text.endswith("systemd: not under systemd\nSplit mode: x\n  y\n"
                         "Uptime: 42 s\n")
