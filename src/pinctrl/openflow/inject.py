"""The action lists of two packet-outs OVN 23.03's pinctrl sends on its own
(controller/pinctrl.c), pure:

* forward_actions(): pinctrl_forward_pkt(), a snooped IGMP/MLD frame
  re-injected into the output stage of its switch: metadata = datapath,
  reg14 = the port it came in on, reg15 = the multicast group to flood
  (OVN_MCAST_MROUTER_FLOOD_TUNNEL_KEY for reports,
  OVN_MCAST_FLOOD_L2_TUNNEL_KEY for queries), resubmit(CONTROLLER, 37);
* local_output_actions(): the querier's general queries and the service
  monitor's probes and resets: metadata = datapath, reg15 = the output
  port or group, reg10 bit 16, resubmit(CONTROLLER, 40).  Bit 16, not
  MLF_LOCAL_ONLY's bit 4: 23.03 passes the flag's mask (16) where
  put_load() wants a bit offset (tests/golden/ovn-23.03/README-upstream.md,
  "the flag quirk"); the golden packet-outs carry 0x10000/0x10000.
"""

from __future__ import annotations

from pinctrl.openflow.ofactions import (
    resubmit,
    set_metadata,
    set_reg,
    set_reg_bit,
)

MFF_LOG_FLAGS = 10
MFF_LOG_INPORT = 14
MFF_LOG_OUTPORT = 15
OFTABLE_OUTPUT_INIT = 37
OFTABLE_LOCAL_OUTPUT = 40
LOCAL_ONLY_QUIRK_BIT = 16

# lib/mcast-group-index.h enum ovn_mcast_tunnel_keys.
OVN_MCAST_FLOOD_TUNNEL_KEY = 0x8000
OVN_MCAST_MROUTER_FLOOD_TUNNEL_KEY = 0x8002
OVN_MCAST_FLOOD_L2_TUNNEL_KEY = 0x8004


def forward_actions(dp_key: int, inport: int, outport: int) -> bytes:
    """pinctrl_forward_pkt()'s actions."""
    return (set_metadata(dp_key) + set_reg(MFF_LOG_INPORT, inport)
            + set_reg(MFF_LOG_OUTPORT, outport)
            + resubmit(OFTABLE_OUTPUT_INIT))


def local_output_actions(dp_key: int, outport: int) -> bytes:
    """The querier's and the service monitor's actions (see above)."""
    return (set_metadata(dp_key) + set_reg(MFF_LOG_OUTPORT, outport)
            + set_reg_bit(MFF_LOG_FLAGS, LOCAL_ONLY_QUIRK_BIT)
            + resubmit(OFTABLE_LOCAL_OUTPUT))
