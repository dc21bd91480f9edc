"""Golden exchanges of issue 4 (arp / nd_ns with buffered packets, nd_na /
nd_na_router, put_arp / put_nd / put_fdb, trigger_event, bind_vport,
activation_strategy_rarp) and issue 6 (reject, tcp_reset, sctp_abort, icmp,
icmp4/6_error, frag-MTU, ACL log) replayed on the wire against the daemon:
every packet byte-identical (no exchange of this set admits a mask), the
packet-ins per opcode as recorded, the log lines as recorded, and the
Southbound rows the recording shows afterwards present in the sandbox SB.

One sandbox + daemon for the module.  The recording ran its scenarios in
one OVN, in order, and state carried over: an exchange may rely on what an
earlier one taught (garp_update_existing_mac_binding updates the row
garp_learn_external created; arp_resolve_sw0_unknown_host and
bind_vport_garp flood to sw0-p6, which only receives once
activation_strategy_rarp activated it).  So the exchanges run here in the
recording's order (GOLDEN_ORDER), and a test selected on its own first
replays the state-changing exchanges that precede it (GoldenChain).

There is no ovn-controller in the sandbox, but the recording's later steps
depend on flows it installed from what pinctrl wrote: the third packet of
arp_resolve_nexthop_put_arp is routed by the MAC_Binding flow (tables
66/67), the last step of activation_strategy_rarp passes because the
blocking flows are gone.  OvnControllerStandIn does exactly that part
(lflow.c consider_neighbor_flow, physical.c setup_rarp_activation_strategy
of 23.03.1) from the SB rows the daemon wrote, nothing else.

Also measured here (issue 4's closing note): the time from injecting the
neighbour's reply to (a) the SB MAC_Binding row being visible to another SB
client and (b) the buffered packets leaving OVS.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest

from pinctrl.actions import load_all
from testbed.golden import exchange_names, load_exchange, replay_exchange
from testbed.ovs_sandbox import PHYS_PORT, VIFS
from testbed.pcap import read_all

pytestmark = pytest.mark.integration

# The exchanges of this file in the order the recording ran them (the
# replies' pcap timestamps; the two without replies, acl_log_drop and
# lb_empty_backends_event, between acl_log_allow and router_tcp_reset).
GOLDEN_ORDER = [
    "arp_request_vif_flows_only", "arp_request_router_flows_only",
    "icmp_echo_router_flows_only",
    "nd_ns_vif_nd_na", "nd_ns_vif_unicast_nd_na", "nd_ns_router_nd_na_router",
    "nd_ns_router_lla_nd_na_router", "nd_ns_dad_vif",
    "nd_rs_ra_sw0_dhcpv6_stateful", "nd_rs_ra_sw1_slaac", "nd_rs_ra_no_sllao",
    "put_fdb_unknown_port", "activation_strategy_rarp", "bind_vport_garp",
    "arp_resolve_nexthop_put_arp", "nd_resolve_nexthop_put_nd",
    "arp_resolve_sw0_unknown_host", "garp_learn_external",
    "garp_update_existing_mac_binding", "nd_na_unsolicited_learn",
    "arp_request_to_router_learns", "nd_ns_to_router_learns",
    "acl_reject_tcp_rst_v4", "acl_reject_tcp_rst_v6", "acl_reject_tcp_ack_v4",
    "acl_reject_udp_icmp_v4", "acl_reject_udp_icmp6_v6",
    "acl_reject_sctp_abort_v4", "acl_reject_icmp_other_v4",
    "acl_log_allow", "acl_log_drop", "lb_empty_backends_reject",
    "lb_empty_backends_event",
    "router_tcp_reset_v4", "router_tcp_reset_v6",
    "router_udp_port_unreachable_v4", "router_udp_port_unreachable_v6",
    "router_sctp_abort_v4", "router_proto_unreachable_v4",
    "router_proto_unreachable_v6", "router_ttl_exceeded_v4",
    "router_ttl_exceeded_v6", "router_frag_needed_v4",
    "router_packet_too_big_v6", "router_frag_needed_v4_from_outside",
]
SCOPE_PREFIXES = ("arp_", "nd_", "acl_reject_", "acl_log_", "router_", "icmp_")
SCOPE_EXTRA = ("garp_learn_external", "garp_update_existing_mac_binding",
               "put_fdb_unknown_port", "lb_empty_backends_event",
               "lb_empty_backends_reject", "bind_vport_garp",
               "activation_strategy_rarp")

# Opcodes whose packet-ins make the daemon write the SB (put_arp, put_nd,
# trigger_event, bind_vport, put_fdb, activation_strategy_rarp): an
# exchange with one changes what later exchanges see.
SB_WRITING_OPCODES = {1, 4, 15, 17, 25, 26}
# Packet-ins the sandbox's history adds to the recorded ones.  The recording
# had learnt 50:54:00:00:00:33 on sw0-p3 in dhcpv4_no_dhcp_options_port
# (not replayed here; OvnControllerStandIn installs no FDB flows either), so
# the ARP reply from that MAC is one more put_fdb here.  Nothing on the wire.
EXTRA_PACKET_INS = {"arp_resolve_sw0_unknown_host": {"put_fdb": 1}}
# Rows an exchange writes that its recording has no *_after table for
# (README-upstream.md): the VM's broadcast gARP for 10.0.0.10 is learnt by
# both routers, committed 1..50 ms later (broadcast jitter).  Waited for, so
# they cannot land inside the next exchange's window.
EXTRA_MAC_BINDINGS = {"bind_vport_garp": {("lr0-sw0", "10.0.0.10", "50:54:00:00:00:01"),
                                          ("lr1-sw0", "10.0.0.10", "50:54:00:00:00:01")}}

OUR_CHASSIS = "hv1"
SB_TIMEOUT = 3.0
ACTIONS = load_all()


# ====================================================================== SB access
def _datum(value):
    """An OVSDB JSON datum as ovn-sbctl --format=json prints it -> Python, in
    the shape of the exchanges' *_after rows: uuid -> str, map -> dict,
    set -> list (a one-element set is printed as its atom)."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, v = value
        if kind in ("uuid", "named-uuid"):
            return v
        if kind == "set":
            return [_datum(x) for x in v]
        if kind == "map":
            return {_datum(k): _datum(x) for k, x in v}
    return value


def sb_rows(sb, table: str, columns: str | None = None) -> list[dict]:
    """Every row of an SB table (optionally only `columns`, comma-separated)."""
    args = ["--format=json"] + ([f"--columns={columns}"] if columns else [])
    out = json.loads(sb.sbctl(*args, "list", table))
    return [dict(zip(out["headings"], map(_datum, row))) for row in out["data"]]


def chassis_uuid(sb, name: str = OUR_CHASSIS) -> str:
    return next(r["_uuid"] for r in sb_rows(sb, "Chassis", "_uuid,name")
                if r["name"] == name)


# ====================================================================== ovn-controller
class OvnControllerStandIn:
    """The flows ovn-controller 23.03.1 derives from what pinctrl writes,
    for the rows the recording's later steps depend on; applied by sync()
    (test thread).

    * MAC_Binding row -> OFTABLE_MAC_BINDING (66): metadata, outport,
      reg0/xxreg0 = ip -> eth.dst = mac, MLF_LOOKUP_MAC; OFTABLE_MAC_LOOKUP
      (67): metadata, inport, ip, eth.src = mac -> MLF_LOOKUP_MAC (lflow.c
      consider_neighbor_flow, priority 100, cookie = the row's first 32
      uuid bits).  A deleted or changed row loses its flows.
    * Port_Binding activated on this chassis by activation-strategy=rarp ->
      the three blocking flows of physical.c
      setup_rarp_activation_strategy are removed.

    Rows present when the sandbox started have their flows in flows.txt
    already (the recording's state dump)."""

    def __init__(self, sb) -> None:
        self.sb = sb
        dp_keys = {r["_uuid"]: r["tunnel_key"]
                   for r in sb_rows(sb, "Datapath_Binding", "_uuid,tunnel_key")}
        # logical port -> (datapath key, port key)
        self.keys = {r["logical_port"]: (dp_keys[r["datapath"]], r["tunnel_key"])
                     for r in sb_rows(sb, "Port_Binding",
                                      "logical_port,datapath,tunnel_key")}
        self.neighbors = {r["_uuid"]: r["mac"] for r in sb_rows(sb, "MAC_Binding")}
        self.activated: set[str] = set()

    def sync(self) -> None:
        rows = {r["_uuid"]: r for r in sb_rows(self.sb, "MAC_Binding")}
        for uuid in list(self.neighbors):
            if uuid not in rows or rows[uuid]["mac"] != self.neighbors[uuid]:
                self.sb.ofctl("del-flows", "br-int", f"cookie=0x{uuid[:8]}/-1")
                del self.neighbors[uuid]
        for uuid, row in rows.items():
            if uuid not in self.neighbors:
                self._add_neighbor(row)
                self.neighbors[uuid] = row["mac"]
        for pb in sb_rows(self.sb, "Port_Binding", "logical_port,options"):
            opts = pb["options"]
            if (opts.get("activation-strategy") == "rarp"
                    and OUR_CHASSIS in opts.get("additional-chassis-activated",
                                                "").split(",")
                    and pb["logical_port"] not in self.activated):
                self._unblock(pb["logical_port"])

    def _add_neighbor(self, row: dict) -> None:
        dp, port = self.keys[row["logical_port"]]
        ip = ipaddress.ip_address(row["ip"])
        if ip.version == 6:
            ip_match = f"xxreg0={int(ip):#x}"
            lookup = f"icmp6,icmpv6_code=0,{ip_match}"
        else:
            ip_match = f"reg0={int(ip):#x}"
            lookup = f"arp,{ip_match}"
        cookie = f"cookie=0x{row['_uuid'][:8]}"
        mac = row["mac"]
        self.sb.ofctl("add-flow", "br-int",
                      f"table=66,priority=100,{cookie},{ip_match},reg15={port:#x},"
                      f"metadata={dp:#x},actions=set_field:{mac}->eth_dst,"
                      "set_field:0x40/0x40->reg10")
        self.sb.ofctl("add-flow", "br-int",
                      f"table=67,priority=100,{cookie},{lookup},reg14={port:#x},"
                      f"metadata={dp:#x},dl_src={mac},"
                      "actions=set_field:0x40/0x40->reg10")

    def _unblock(self, logical_port: str) -> None:
        dp, port = self.keys[logical_port]
        ofport = next(o for lsp, o in VIFS.values() if lsp == logical_port)
        for match in (f"table=0,priority=1010,rarp,in_port={ofport}",
                      f"table=0,priority=1000,in_port={ofport}",
                      f"table=65,priority=1000,reg15={port:#x},metadata={dp:#x}"):
            self.sb.ofctl("--strict", "del-flows", "br-int", match)
        self.activated.add(logical_port)


# ====================================================================== expectations
def pin_opcodes(steps: list[dict]) -> collections.Counter:
    """Opcodes of the recorded NXT_PACKET_IN2s of `steps`."""
    return collections.Counter(
        int(rec["userdata_hex"][:8], 16)
        for step in steps for rec in step["openflow_pinctrl"]
        if rec["dir"] == "s2c" and rec["msg"] == "NXT_PACKET_IN2")


def changes_state(ex: dict) -> bool:
    """Whether the daemon writes the SB for this exchange (so later
    exchanges see its effect)."""
    return bool(set(pin_opcodes(ex["steps"])) & SB_WRITING_OPCODES)


def injected_macs(ex: dict) -> set[str]:
    """The Ethernet sources of the frames the exchange injects."""
    return {":".join(inj["hex"][12 + i:14 + i] for i in range(0, 12, 2))
            for step in ex["steps"] for inj in step["inject"]}


def level_text(line: str) -> tuple[str, str]:
    """(LEVEL, text) of a vlog line; 23.03 writes "ts|seq|module|LEVEL|text",
    python-ovs pads the separators with spaces."""
    parts = [p.strip() for p in line.rstrip("\n").split("|", 4)]
    return parts[3], parts[4]


def _mismatch(what: str, want, got) -> str:
    return f"{what}:\n  recorded {want!r}\n  sandbox  {got!r}"


def check_mac_bindings(sb, ex: dict, before: dict[str, dict], t0: float) -> str | None:
    """The MAC_Binding rows written during the exchange are the recorded
    ones (datapath, logical_port, ip, mac; _uuid and timestamp vary); a row
    that existed is updated in place; timestamps are the write's wall
    clock in ms."""
    cols = ("datapath", "logical_port", "ip", "mac")
    rows = sb_rows(sb, "MAC_Binding")
    changed = [r for r in rows if before.get(r["_uuid"]) != r]
    want = sorted(tuple(r[c] for c in cols) for r in ex["mac_binding_after"])
    got = sorted(tuple(r[c] for c in cols) for r in changed)
    if got != want:
        return _mismatch("MAC_Binding rows written (datapath, port, ip, mac)", want, got)
    old = {(r["logical_port"], r["ip"]): u for u, r in before.items()}
    for r in changed:
        uuid = old.get((r["logical_port"], r["ip"]))
        if uuid is not None and uuid != r["_uuid"]:
            return f"MAC_Binding {r['logical_port']} {r['ip']} re-inserted, not updated"
        if not t0 * 1000 - 1000 <= r["timestamp"] <= time.time() * 1000 + 1000:
            return f"MAC_Binding timestamp {r['timestamp']} outside the exchange"
    if len({(r["logical_port"], r["ip"]) for r in rows}) != len(rows):
        return f"duplicate MAC_Binding rows: {rows}"
    return None


def check_fdb(sb, ex: dict) -> str | None:
    """The recorded FDB rows for the MACs this exchange injects exist (the
    recording's table also holds rows other exchanges learnt)."""
    cols = ("dp_key", "mac", "port_key")
    macs = injected_macs(ex)
    want = sorted(tuple(r[c] for c in cols) for r in ex["fdb_after"] if r["mac"] in macs)
    got = sorted(tuple(r[c] for c in cols) for r in sb_rows(sb, "FDB") if r["mac"] in macs)
    return None if got == want else _mismatch("FDB rows (dp_key, mac, port_key)", want, got)


def check_controller_events(sb, ex: dict) -> str | None:
    """Controller_Event: event_type and event_info as recorded; seq_num,
    the chassis and the load balancer uuids masked (the exchange's
    fields_that_vary): seq_num a positive integer, chassis ours, a load
    balancer named."""
    hv1 = chassis_uuid(sb)
    got = [(r["event_type"], {k: v for k, v in r["event_info"].items() if k != "load_balancer"})
           for r in sb_rows(sb, "Controller_Event")
           if r["chassis"] == hv1 and isinstance(r["seq_num"], int) and r["seq_num"] > 0
           and r["event_info"].get("load_balancer")]
    for want in ex["controller_event_after"]:
        key = (want["event_type"],
               {k: v for k, v in want["event_info"].items() if k != "load_balancer"})
        if key not in got:
            return _mismatch("Controller_Event", key, got)
    return None


def check_port_bindings(sb, ex: dict) -> str | None:
    """The recorded Port_Binding columns, exactly (the sandbox SB is the
    recording's, uuids included)."""
    rows = {r["logical_port"]: r for r in sb_rows(sb, "Port_Binding")}
    for want in ex["port_binding_after"]:
        have = rows.get(want["logical_port"], {})
        got = {k: have.get(k) for k in want}
        if got != want:
            return _mismatch("Port_Binding", want, got)
    return None


def check_sb_after(sb, ex: dict, before: dict[str, dict], t0: float) -> str | None:
    """None when every *_after table of the exchange matches, else why not."""
    checks = {"mac_binding_after": lambda: check_mac_bindings(sb, ex, before, t0),
              "fdb_after": lambda: check_fdb(sb, ex),
              "controller_event_after": lambda: check_controller_events(sb, ex),
              "port_binding_after": lambda: check_port_bindings(sb, ex)}
    for key, check in checks.items():
        if key in ex:
            err = check()
            if err:
                return err
    return None


def wait_sb_after(sb, ex: dict, before: dict[str, dict], t0: float,
                  timeout: float = SB_TIMEOUT) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        err = check_sb_after(sb, ex, before, t0)
        if err is None or time.monotonic() > deadline:
            return err
        time.sleep(0.05)


# ====================================================================== replay
def replay_step(sb, ex: dict, step: dict):
    """One step of `ex` on the wire (ReplayResult, not checked).  Extras are
    watched for 0.2 s after the last expected reply, a step expecting none
    for 0.5 s: the daemon answers within milliseconds."""
    return replay_exchange(sb, {**ex, "steps": [step]}, check=False,
                           settle=0.2, quiet=0.5)


@dataclass
class Outcome:
    name: str
    steps: list = field(default_factory=list)           # StepResults
    pins_expected: collections.Counter = field(default_factory=collections.Counter)
    pins_got: collections.Counter = field(default_factory=collections.Counter)
    sb_error: str | None = None
    log_missing: list[str] = field(default_factory=list)

    @property
    def wire_ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def ok(self) -> bool:
        return (self.wire_ok and self.pins_got == self.pins_expected
                and self.sb_error is None and not self.log_missing)

    def report(self) -> str:
        lines = [f"exchange {self.name}:"]
        for s in self.steps:
            lines.append(f"  step {s.title!r}: expected {len(s.expected)}, got {len(s.got)} "
                         f"-> {'OK' if s.ok else 'MISMATCH'}")
            lines += [f"    missing    {p}: {h}" for p, h in s.missing]
            lines += [f"    unexpected {p.port}: {p.hex}" for p in s.unexpected]
        if self.pins_got != self.pins_expected:
            lines.append(f"  packet-ins: recorded {dict(self.pins_expected)}, "
                         f"daemon {dict(self.pins_got)}")
        if self.sb_error:
            lines.append("  SB: " + self.sb_error)
        lines += [f"  log line missing: {l}" for l in self.log_missing]
        return "\n".join(lines)


class GoldenChain:
    """Replays exchanges on one sandbox in GOLDEN_ORDER (test thread); an
    exchange asked for first replays the state-changing exchanges before
    it that have not run yet."""

    def __init__(self, sb, daemon) -> None:
        self.sb, self.daemon = sb, daemon
        self.stand_in = OvnControllerStandIn(sb)
        self.replayed: set[str] = set()

    def replay(self, name: str) -> Outcome:
        for prior in GOLDEN_ORDER[:GOLDEN_ORDER.index(name)]:
            if prior not in self.replayed and changes_state(load_exchange(prior)):
                out = self.run(prior)
                assert out.ok, "prerequisite failed:\n" + out.report()
        return self.run(name)

    def wait_mac_bindings(self, want: set[tuple[str, str, str]]) -> str | None:
        """Wait until MAC_Binding holds every (port, ip, mac) of 'want'."""
        deadline = time.monotonic() + SB_TIMEOUT
        while True:
            have = {(r["logical_port"], r["ip"], r["mac"])
                    for r in sb_rows(self.sb, "MAC_Binding")}
            if want <= have:
                return None
            if time.monotonic() > deadline:
                return _mismatch("MAC_Binding rows (port, ip, mac)",
                                 sorted(want), sorted(want & have))
            time.sleep(0.05)

    def run(self, name: str) -> Outcome:
        self.replayed.add(name)
        ex = load_exchange(name)
        out = Outcome(name)
        for op, n in pin_opcodes(ex["steps"]).items():
            out.pins_expected[ACTIONS[op].name] += n
        for op_name, n in EXTRA_PACKET_INS.get(name, {}).items():
            out.pins_expected[op_name] += n
        before = {r["_uuid"]: r for r in sb_rows(self.sb, "MAC_Binding")}
        cov0 = self.daemon.coverage()
        log_from = os.path.getsize(self.daemon.log_file)
        t0 = time.time()
        writes = [i for i, step in enumerate(ex["steps"])
                  if set(pin_opcodes([step])) & SB_WRITING_OPCODES]
        for i, step in enumerate(ex["steps"]):
            out.steps += replay_step(self.sb, ex, step).steps
            if writes and i == writes[-1]:
                # The rows it writes, and ovn-controller's flows for them,
                # are what the next step (or exchange) relies on.
                out.sb_error = wait_sb_after(self.sb, ex, before, t0)
                self.stand_in.sync()
        if not writes:
            out.sb_error = check_sb_after(self.sb, ex, before, t0)
        extra = EXTRA_MAC_BINDINGS.get(name)
        if extra and not out.sb_error:
            out.sb_error = self.wait_mac_bindings(extra)
        cov1 = self.daemon.coverage()
        for a in ACTIONS.values():
            delta = cov1.get(a.counter, 0) - cov0.get(a.counter, 0)
            if delta:
                out.pins_got[a.name] = delta
        with open(self.daemon.log_file, errors="replace") as f:
            f.seek(log_from)
            logged = {level_text(line) for line in f if line.count("|") >= 4}
        out.log_missing = [line for step in ex["steps"]
                           for line in step.get("ovn_controller_log", [])
                           if level_text(line) not in logged]
        return out


@pytest.fixture(scope="module")
def chain(shared_sandbox, shared_daemon) -> GoldenChain:
    return GoldenChain(shared_sandbox, shared_daemon)


# ====================================================================== tests
def test_golden_set_is_complete():
    want = {n for n in exchange_names() if n.startswith(SCOPE_PREFIXES)} | set(SCOPE_EXTRA)
    assert len(GOLDEN_ORDER) == len(set(GOLDEN_ORDER)) == 45
    assert set(GOLDEN_ORDER) == want


@pytest.mark.parametrize("name", GOLDEN_ORDER)
def test_golden_exchange(chain, name):
    """On the wire byte for byte, packet-ins per opcode, log lines and SB
    rows as recorded."""
    out = chain.replay(name)
    assert out.ok, out.report()
    assert sum(len(s.got) for s in out.steps) >= sum(len(s.expected) for s in out.steps)
    assert chain.daemon.alive()


# ====================================================================== latency
class SbMonitor:
    """`ovsdb-client monitor` of one SB table in the background (a thread
    reads its output); every line is stamped with time.time() on arrival,
    the clock OVS stamps pcap records with.  Stopped by pid."""

    def __init__(self, sb, table: str, columns: str) -> None:
        self.lines: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        self.popen = subprocess.Popen(
            ["ovsdb-client", "monitor", sb.sb_db, "OVN_Southbound", table, columns,
             "--format=csv"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=sb.env)
        threading.Thread(target=self._read, daemon=True).start()
        # The initial contents come first: later lines are changes.
        self.wait_for(lambda line: ",initial," in line or line.startswith("row,"))

    def _read(self) -> None:
        for line in self.popen.stdout:
            with self._cv:
                self.lines.append((time.time(), line.rstrip("\n")))
                self._cv.notify_all()

    def wait_for(self, pred, since: int = 0, timeout: float = SB_TIMEOUT) -> float | None:
        """Arrival time of the first line from index `since` on matching
        pred, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ts, line in self.lines[since:]:
                    if pred(line):
                        return ts
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def forget_neighbor(chain: GoldenChain, ip: str) -> None:
    """Delete the MAC_Binding rows of `ip` and (stand-in) their flows, so
    the next packet to it is punted to arp / nd_ns again."""
    for r in sb_rows(chain.sb, "MAC_Binding", "_uuid,ip"):
        if r["ip"] == ip:
            chain.sb.sbctl("destroy", "MAC_Binding", r["_uuid"])
    chain.stand_in.sync()
    # The daemon's replica hears of the delete asynchronously, and a
    # binding it still holds releases what gets buffered (23.03's
    # run_buffered_binding does the same with its replica): let it catch up
    # (0.3 s was not always enough on a loaded 2-CPU machine).
    time.sleep(1.0)


def measure_release(chain: GoldenChain, mon: SbMonitor, name: str, ip: str, mac: str
                    ) -> tuple[float, float] | None:
    """Steps 1-2 of a buffered-packet exchange, byte-checked, with the
    neighbour unknown: seconds from the neighbour's reply entering OVS
    (gdphys rx pcap) to (the SB row seen by another client, the first
    buffered packet leaving OVS)."""
    ex = load_exchange(name)
    forget_neighbor(chain, ip)
    outs = [replay_step(chain.sb, ex, ex["steps"][0])]
    since = len(mon.lines)
    outs.append(replay_step(chain.sb, ex, ex["steps"][1]))
    for res in outs:
        assert res.ok, res.report()
    reply = bytes.fromhex(ex["steps"][1]["inject"][0]["hex"])
    t_in = [r.ts for r in read_all(chain.sb.dir + f"/{PHYS_PORT}-rx.pcap") if r.data == reply][-1]
    t_row = mon.wait_for(lambda line: f'"""{ip}"""' in line and f'"""{mac}"""' in line,
                         since=since)
    assert t_row is not None, f"no MAC_Binding {ip} {mac} seen by ovsdb-client monitor"
    t_out = min(p.ts for p in outs[1].steps[0].got)
    written = next(r["timestamp"] for r in sb_rows(chain.sb, "MAC_Binding") if r["ip"] == ip)
    chain.stand_in.sync()
    if t_out < t_in:
        # Released (byte-checked: with the right MAC) before the reply: the
        # daemon's replica still held the binding forget_neighbor deleted,
        # and an existing binding releases buffered packets (23.03's
        # run_buffered_binding, same race).  No latency to measure.
        return None
    # The row is written after the reply (its timestamp column, wall clock
    # ms, the clock of the pcap records).  The buffered packets may leave
    # before the row lands: the daemon looks up the bindings it is writing
    # too (a learnt neighbour releases them, issue 16), so no order between
    # 'written' and t_out is asserted.
    assert t_in - 0.001 <= written / 1000, (t_in, written, t_out)
    return t_row - t_in, t_out - t_in


def test_buffered_release_latency(chain):
    """Issue 4's closing note: learnt reply -> SB row visible -> buffered
    packets delivered, median of several runs (each run byte-checked)."""
    cases = [("arp_resolve_nexthop_put_arp", "172.16.0.254", "00:00:00:00:fe:fe", 5),
             ("nd_resolve_nexthop_put_nd", "2001:db8:ff::fe", "00:00:00:00:fe:fe", 3)]
    mon = SbMonitor(chain.sb, "MAC_Binding", "ip,mac")
    try:
        released0 = chain.daemon.coverage().get("pinctrl_buffered_packets_released", 0)
        report, n_released = [], 0
        for name, ip, mac, runs in cases:
            samples, attempts = [], 0
            while len(samples) < runs and attempts < 3 * runs:
                attempts += 1
                sample = measure_release(chain, mon, name, ip, mac)
                if sample is not None:
                    samples.append(sample)
            assert len(samples) == runs, f"{attempts} attempts, {len(samples)} measured"
            n_released += attempts * len(load_exchange(name)["steps"][1]["replies"])
            row_ms = [1000 * a for a, _ in samples]
            out_ms = [1000 * b for _, b in samples]
            assert all(0 < v < 1000 for v in row_ms + out_ms), samples
            report.append(f"{name}: reply -> SB row visible median "
                          f"{statistics.median(row_ms):.1f} ms "
                          f"({', '.join(f'{v:.1f}' for v in row_ms)}); "
                          f"reply -> buffered packet out median "
                          f"{statistics.median(out_ms):.1f} ms "
                          f"({', '.join(f'{v:.1f}' for v in out_ms)})")
    finally:
        mon.stop()
    released = chain.daemon.coverage().get("pinctrl_buffered_packets_released", 0) - released0
    assert released == n_released
    print("\n" + "\n".join(report))
