"""DHCPv6 prefix delegation (handle_dhcpv6_reply, opcode 19): the client's
messages against OVN 23.03's recording (ipv6_prefix_delegation), the
client state machine (SOLICIT, REQUEST, done, RENEW, REBIND), the
handler's PdJob, the main thread's plan and the Port_Binding writer."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from pinctrl.actions import REGISTRY
from pinctrl.actions.dhcpv6_pd import (
    DONE,
    REBIND,
    RENEW,
    REQUEST,
    SOLICIT,
    PdClient,
    request_actions,
)
from pinctrl.db.local_datapaths import LocalDatapath, PortBindings
from pinctrl.db.pd_plan import eui64_lla, parse_pd_list, prefix_delegation
from pinctrl.db.writers.pd import PdPrefixWriter
from pinctrl.handler import dispatch
from pinctrl.handler.garp_job import inport_actions
from pinctrl.handler.pd_job import PdJob
from pinctrl.openflow import messages as ofmsg
from pinctrl.packet import dhcpv6_pd as pd
from pinctrl.shared.handover import Handover
from pinctrl.shared.records import PdConfig
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from testbed import golden
from tests.unit.test_bfd import Notify, frames_out

EX = golden.load_exchange("ipv6_prefix_delegation")
AID = 42037                                  # the recorded IAID
GW6 = bytes.fromhex("20010db800ff00000000000000000001")
CFG = PdConfig(GW6, bytes.fromhex("00000000ff03"),
               bytes.fromhex("00000000ff02"), 3, 3, 4, 3, 0, None, 0)
PREFIX = bytes.fromhex("20010db8aaaa00010000000000000000")
SB_VALUE = EX["sb_port_binding_lr0_sw1_after"][0]["options"]["ipv6_ra_pd_list"]


def records(i: int, msg: str) -> list[dict]:
    return [r for r in EX["steps"][i]["openflow_pinctrl"] if r["msg"] == msg]


class Snap:
    def __init__(self, entries) -> None:
        self.version, self.entries = 1, dict(entries)

    def __call__(self):
        return self.version, self.entries


def new_job(cfg=CFG, rand=lambda n: 0):
    out = Handover(SharedState().mutex, "test_drop")
    notify = Notify()
    job = PdJob(Snap({"lr0-sw1": cfg}), out, notify, rand)
    env = dispatch.Env()
    env.prefixd = job
    return job, out, notify, env


def solicit_with(aid: int):
    """A job whose client has just sent its SOLICIT with IAID 'aid'."""
    job, out, notify, env = new_job(rand=lambda n: aid - 10000 if n > 3000
                                    else 0)
    (msg,) = job.run(env, 0)
    return job, out, notify, env, msg


# --- the recording ------------------------------------------------------------

def test_solicit_packet_out_equals_the_recorded_one():
    """Multicast from 2001:db8:ff::1 / 00:00:00:00:ff:03, client DUID-LL of
    lr0-sw1's MAC, IA_PD without prefix, injected into the public switch
    as public-lr0 (metadata 3, reg14 3, resubmit(CONTROLLER, 8))."""
    *_, msg = solicit_with(AID)
    rec = records(0, "OFPT_PACKET_OUT")[0]
    assert golden.same_message(msg, bytes.fromhex(rec["hex"]))
    assert msg == ofmsg.packet_out(
        struct.unpack_from("!I", msg, 4)[0], inport_actions(3, 3),
        bytes.fromhex(rec["packet_hex"]))


def test_advertise_is_answered_with_the_recorded_request():
    job, _, _, env, _ = solicit_with(AID)
    pin = golden.packet_in_from_hex(records(0, "NXT_PACKET_IN2")[0]["hex"])
    (msg,) = dispatch.process_packet_in(pin, env, 100)
    assert golden.same_message(msg, bytes.fromhex(
        records(0, "OFPT_PACKET_OUT")[1]["hex"]))
    assert job.clients["lr0-sw1"].state == REQUEST


def test_reply_writes_the_recorded_pd_list():
    job, out, notify, env, _ = solicit_with(AID)
    pin = golden.packet_in_from_hex(records(1, "NXT_PACKET_IN2")[0]["hex"])
    assert dispatch.process_packet_in(pin, env, 200) == []
    assert out.take() == {"lr0-sw1": SB_VALUE} and notify.n == 1
    c = job.clients["lr0-sw1"]
    assert (c.state, c.prefix, c.plen) == (DONE, PREFIX, 64)
    assert (c.t1, c.t2, c.vlife) == (1800_000, 2880_000, 7200_000)
    assert c.server_addr == bytes.fromhex("fe800000000000000200" "00fffe00fefe")
    assert job.run(env, 1000) == []            # no more SOLICITs


def test_messages_for_another_iaid_or_port_are_ignored():
    job, out, _, env, _ = solicit_with(AID + 1)
    rec = records(0, "NXT_PACKET_IN2")[0]["hex"]
    before = coverage.get("pinctrl_prefixd_drop_no_client")
    assert dispatch.process_packet_in(golden.packet_in_from_hex(rec), env) == []
    assert job.clients["lr0-sw1"].state == SOLICIT
    job, out, _, env, _ = solicit_with(AID)
    pin = golden.packet_in_from_hex(rec)
    pin.metadata.set_reg_bit(14, 2, True)       # via another router port
    assert dispatch.process_packet_in(pin, env) == []
    assert coverage.get("pinctrl_prefixd_drop_no_client") == before + 2


# --- the client state machine ---------------------------------------------------

def lease(**kw):
    base = dict(aid=AID, t1=10, t2=20, plife=30, vlife=40, plen=64,
                prefix=PREFIX, server_id=b"\0\3\0\1" + bytes(6))
    base.update(kw)
    return pd.Lease(**base)


def parsed(frame: bytes) -> tuple[int, dict[int, bytes], bytes]:
    """(message type, options by code, IPv6 destination) of a frame."""
    data = frame[14 + 40 + 8:]
    return data[0], dict(pd.options(data[4:])), frame[38:54]


def test_renew_rebind_solicit_timeline():
    rand = lambda n: 0 if n <= 3000 else 12345
    c = PdClient(CFG, 0, rand)
    t, opts, dst = parsed(c.due(0, rand))
    assert (t, c.aid, dst) == (pd.SOLICIT, 10000 + 12345, pd.ALL_SERVERS)
    c.advertised()
    assert parsed(c.due(1, rand))[0] == pd.SOLICIT and c.aid == 22345
    server = bytes.fromhex("fe80000000000000020000fffe00fefe")
    c.aid = AID
    assert c.replied(lease(), server, b"\0\0\0\0\xfe\xfe", 100) == \
        f"{AID}:2001:db8:aaaa:1::/64"
    assert c.due(100 + 10_000, rand) is None          # T1 not passed yet
    t, opts, dst = parsed(c.due(100 + 10_001, rand))
    assert (c.state, t, dst) == (RENEW, pd.RENEW, server)
    assert opts[pd.OPT_SERVER_ID] == lease().server_id
    assert opts[pd.OPT_IA_PD][:4] == AID.to_bytes(4, "big")
    t, opts, dst = parsed(c.due(100 + 20_001, rand))
    assert (c.state, t, dst) == (REBIND, pd.REBIND, pd.ALL_SERVERS)
    assert pd.OPT_SERVER_ID not in opts
    t, opts, _ = parsed(c.due(100 + 40_001, rand))
    assert (c.state, t, c.aid) == (SOLICIT, pd.SOLICIT, AID)  # prefix kept
    assert PREFIX in opts[pd.OPT_IA_PD]


def test_solicits_every_zero_to_three_seconds():
    draws = []
    rand = lambda n: draws.append(n) or n - 1
    c = PdClient(CFG, 0, rand)
    assert c.next_announce == 2999 and draws == [3000]
    assert c.due(2998, rand) is None
    assert c.due(2999, rand) is not None and c.next_announce == 2999 + 2999


def test_prefix_from_sb_is_the_first_hint():
    cfg = CFG._replace(aid=7, prefix=PREFIX, plen=64)
    c = PdClient(cfg, 0, lambda n: 0)
    t, opts, _ = parsed(c.due(0, lambda n: 0))
    assert t == pd.SOLICIT and c.aid == 7
    assert opts[pd.OPT_IA_PD][:4] == (7).to_bytes(4, "big")
    assert PREFIX in opts[pd.OPT_IA_PD]


# --- parsing ----------------------------------------------------------------------

def ia_pd_opt(t1=1800, t2=2880, plife=3600, vlife=7200, status=None,
              aid=AID):
    sub = pd.option(pd.OPT_IA_PREFIX, struct.pack("!IIB16s", plife, vlife, 64,
                                                  PREFIX))
    if status is not None:
        sub += pd.option(pd.OPT_STATUS_CODE, struct.pack("!H", status))
    return pd.option(pd.OPT_IA_PD, struct.pack("!III", aid, t1, t2) + sub)


@pytest.mark.parametrize("kw", [dict(t1=10, t2=5), dict(plife=9, vlife=8),
                                dict(status=6)])
def test_bad_advertise_and_reply(kw):
    body = pd.client_id(b"\0" * 6) + ia_pd_opt(**kw)
    assert pd.request_from_advertise(bytes((2, 0, 0, 0)) + body) is None
    assert pd.parse_reply(bytes((7, 0, 0, 0)) + body) is None


def test_truncated_options_are_refused():
    good = bytes((7, 0, 0, 0)) + ia_pd_opt()
    assert pd.parse_reply(good).prefix == PREFIX
    for cut in range(5, len(good)):
        assert pd.parse_reply(good[:cut]) is None
        assert pd.request_from_advertise(b"\2" + good[1:cut]) is None


def test_request_keeps_only_ia_prefix_and_identifiers():
    adv = (bytes((2, 1, 2, 3)) + pd.client_id(b"\1" * 6)
           + pd.option(23, bytes(16)) + ia_pd_opt(status=0)
           + pd.option(pd.OPT_SERVER_ID, b"srv"))
    aid, req = pd.request_from_advertise(adv)
    assert aid == AID and req[:4] == bytes((3, 0, 0, 0))
    opts = pd.options(req[4:])
    assert [c for c, _ in opts] == [pd.OPT_CLIENT_ID, pd.OPT_IA_PD,
                                    pd.OPT_SERVER_ID]
    assert len(opts[1][1]) == 12 + 29           # status code dropped


def test_registered_not_paused():
    act = REGISTRY[19]
    assert (act.name, act.pause) == ("handle_dhcpv6_reply", False)
    assert request_actions(4, 3)


# --- plan and writer ------------------------------------------------------------

def ns(**kw):
    return SimpleNamespace(**kw)


def ports(resident="hv1", pd_list=None):
    lr0, public = ns(tunnel_key=4, external_ids={}), ns(tunnel_key=3,
                                                        external_ids={})
    sw1 = ns(tunnel_key=2, external_ids={})
    gw = ns(logical_port="lr0-public", type="patch", tunnel_key=3,
            datapath=lr0, chassis=[], mac=["00:00:00:00:ff:03 172.16.0.1/24 "
                                           "2001:db8:ff::1/64"],
            options={"peer": "public-lr0", "ipv6_prefix_delegation": "true"})
    peer = ns(logical_port="public-lr0", type="patch", tunnel_key=3,
              datapath=public, chassis=[], mac=["router"],
              options={"peer": "lr0-public"})
    down_opts = {"peer": "sw1-lr0", "ipv6_prefix": "true"}
    if pd_list:
        down_opts["ipv6_ra_pd_list"] = pd_list
    down = ns(logical_port="lr0-sw1", type="patch", tunnel_key=2,
              datapath=lr0, chassis=[], options=down_opts,
              mac=["00:00:00:00:ff:02 10.0.1.1/24 2001:db8:1::1/64"])
    sw1_lr0 = ns(logical_port="sw1-lr0", type="patch", tunnel_key=2,
                 datapath=sw1, chassis=[], mac=["router"],
                 options={"peer": "lr0-sw1"})
    group = ns(ha_chassis=[ns(chassis=[ns(name=resident)], priority=1)],
               ref_chassis=[])
    cr = ns(logical_port="cr-lr0-public", type="chassisredirect",
            tunnel_key=4, datapath=lr0, options={},
            chassis=[ns(name=resident)], ha_chassis_group=[group],
            mac=gw.mac)
    pbs = PortBindings([gw, peer, down, sw1_lr0, cr])
    ld = LocalDatapath(lr0, 4, peer_ports=[(gw, peer), (down, sw1_lr0)])
    return pbs, {4: ld}


def test_plan_of_the_recorded_topology():
    pbs, lds = ports()
    assert prefix_delegation(pbs, "hv1", lds) == {"lr0-sw1": CFG}
    pbs, lds = ports(resident="hv2")
    assert prefix_delegation(pbs, "hv1", lds) == {}
    pbs, lds = ports(pd_list=SB_VALUE)
    assert prefix_delegation(pbs, "hv1", lds)["lr0-sw1"] == CFG._replace(
        aid=AID, prefix=PREFIX, plen=64)


def test_pd_list_and_lla_parsing():
    assert parse_pd_list(SB_VALUE) == (AID, PREFIX, 64)
    for bad in (None, "", "x:2001:db8::/64", "1:junk/64", "1:2001:db8::"):
        assert parse_pd_list(bad) == (0, None, 0)
    assert eui64_lla(bytes.fromhex("00000000ff03")) == bytes.fromhex(
        "fe80000000000000020000fffe00ff03")


def test_writer_sets_the_option_once():
    shared = SharedState()
    w = PdPrefixWriter(shared)
    pbs, _ = ports()
    written = []
    pbs.by_name["lr0-sw1"].setkey = lambda col, k, v: written.append((k, v))
    ctx = ns(ports=pbs)
    shared.pd_prefixes.put("lr0-sw1", SB_VALUE)
    shared.pd_prefixes.put("gone", SB_VALUE)
    w.collect(0)
    assert w.write(None, ctx, 0)
    assert written == [("ipv6_ra_pd_list", SB_VALUE)]
    w.committed()
    pbs.by_name["lr0-sw1"].options["ipv6_ra_pd_list"] = SB_VALUE
    shared.pd_prefixes.put("lr0-sw1", SB_VALUE)
    w.collect(0)
    w.write(None, ctx, 0)
    assert len(written) == 1
    shared.handler_seq.close()
    shared.main_seq.close()


def test_frames_out_helper_reads_our_packet_outs():
    *_, msg = solicit_with(AID)
    (frame,) = frames_out([msg])
    assert parsed(frame)[0] == pd.SOLICIT
