"""DHCPv6 prefix-delegation clients: the table, their schedule and the
hand-over of delegated prefixes (a handler job).  OVN 23.03's
send_ipv6_prefixd() and the state part of prepare_ipv6_prefixd()
(controller/pinctrl.c).

The main thread plans the clients (db/pd_plan.py: one PdConfig per
downstream port with options:ipv6_prefix=true behind a gateway port with
ipv6_prefix_delegation=true hosted here) and publishes them in
SharedState; PdJob owns the clients (actions/dhcpv6_pd.py PdClient) and
is reached by handle_dhcpv6_reply through env.prefixd.  SOLICIT, RENEW
and REBIND are injected into the gateway port's peer switch as if that
port had sent them (metadata, reg14, resubmit(CONTROLLER, 8)).  A
delegated prefix goes to SharedState.pd_prefixes; the main thread writes
Port_Binding options:ipv6_ra_pd_list.  pinctrl_handler thread only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import ovs.poller

from pinctrl.actions.dhcpv6_pd import PdClient
from pinctrl.actions.env import HandlerEnv, HandoverPut
from pinctrl.handler.garp_job import inport_actions
from pinctrl.openflow import messages as ofmsg
from pinctrl.packet.dhcpv6_pd import Lease
from pinctrl.packet.flow import Flow
from pinctrl.shared.records import PdConfig
from pinctrl.support import appctl, coverage


_SENT = {"renew": "renew", "rebind": "rebind"}     # else a SOLICIT


def random_range(n: int) -> int:
    """OVS random_range(n): uniform in [0, n)."""
    return random.randrange(n) if n > 0 else 0


class PdJob:
    """The prefix-delegation clients of this chassis (pinctrl_handler
    thread only).  'get_snapshot' returns (version, {port: PdConfig});
    'prefixes' is the handover table port -> ipv6_ra_pd_list value;
    'notify_main' wakes the main thread."""

    def __init__(self, get_snapshot: Callable[[], tuple[int, Mapping]],
                 prefixes: HandoverPut[str, str],
                 notify_main: Callable[[], None],
                 rand: Callable[[int], int] = random_range) -> None:
        self._get_snapshot = get_snapshot
        self._prefixes = prefixes
        self._notify_main = notify_main
        self._rand = rand
        self._version: int | None = None
        self.clients: dict[str, PdClient] = {}

    def update(self, snapshot: Mapping[str, PdConfig], now: int) -> None:
        """New ports start soliciting within 3 s; removed ones stop; the
        others keep their state with the new addresses."""
        for name in [n for n in self.clients if n not in snapshot]:
            del self.clients[name]
        for name, cfg in snapshot.items():
            c = self.clients.get(name)
            if c is None:
                self.clients[name] = PdClient(cfg, now, self._rand)
            else:
                c.cfg = cfg

    # --- env.prefixd --------------------------------------------------------
    def _find(self, dp_key: int, port_key: int, f: Flow,
              aid: int) -> tuple[str, PdClient] | None:
        for name, c in self.clients.items():
            if (c.cfg.up_dp_key, c.cfg.up_port_key) == (dp_key, port_key) \
                    and c.matches(f, aid):
                return name, c
        return None

    def advertise(self, dp_key: int, port_key: int, f: Flow,
                  aid: int) -> bool:
        """An ADVERTISE for one of our clients: it is answered."""
        found = self._find(dp_key, port_key, f, aid)
        if found is None:
            return False
        found[1].advertised()
        return True

    def reply(self, dp_key: int, port_key: int, f: Flow, lease: Lease,
              now: int) -> bool:
        """A REPLY delegating a prefix to one of our clients: done, and
        the prefix handed to the main thread."""
        found = self._find(dp_key, port_key, f, lease.aid)
        if found is None:
            return False
        name, c = found
        self._prefixes.put(name, c.replied(lease, f.ipv6_src, f.dl_src, now))
        self._notify_main()
        return True

    # --- HandlerJob protocol ---------------------------------------------------
    def run(self, env: HandlerEnv, now: int) -> list[bytes]:
        """Pick up a new snapshot; send what is due (pinctrl_handler
        thread, while connected)."""
        version, snapshot = self._get_snapshot()
        if version != self._version:
            self._version = version
            self.update(snapshot, now)
        out = []
        for c in self.clients.values():
            if now < c.next_announce:
                continue
            frame = c.due(now, self._rand)
            if frame is not None:
                coverage.inc("pinctrl_prefixd_"
                             + _SENT.get(c.state, "solicit") + "_sent")
                out.append(ofmsg.packet_out(
                    env.next_xid(), inport_actions(c.cfg.dp_key,
                                                   c.cfg.port_key), frame))
        return out

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Wake for the next message due (pinctrl_handler thread)."""
        if self.clients:
            poller.timer_wait_until(min(c.next_announce
                                        for c in self.clients.values()))


@appctl.command("pinctrl/prefix-delegation")
def _cmd_pd(ctx: appctl.CommandContext, args: list[str]) -> str:
    """ovs-appctl pinctrl/prefix-delegation (main thread): the downstream
    ports this chassis asks prefixes for (the prefix lands in SB
    Port_Binding options:ipv6_ra_pd_list)."""
    version, entries = ctx.shared.get_prefixd()
    lines = [f"prefix delegation (snapshot {version}): {len(entries)}"]
    for name, c in sorted(entries.items()):
        lines.append(f"  {name}: via datapath {c.up_dp_key} port "
                     f"{c.up_port_key}, injected into datapath {c.dp_key} "
                     f"port {c.port_key}")
    return "\n".join(lines) + "\n"
