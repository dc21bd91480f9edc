"""A real DHCP client (busybox udhcpc) in a network namespace, on a veth that
is sw0-p1 on a netdev-datapath br-int, gets option set "A" from the daemon."""

import os
import stat
import time

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """#!/bin/sh
# udhcpc event script: record what the client was given.
out="{out}"
echo "event=$1" >> "$out.events"
case "$1" in
  bound|renew)
    {{
      echo "ip=$ip"
      echo "subnet=$subnet"
      echo "mask=$mask"
      echo "router=$router"
      echo "dns=$dns"
      echo "lease=$lease"
      echo "domain=$domain"
      echo "serverid=$serverid"
      echo "mtu=$mtu"
    }} > "$out"
    ;;
esac
exit 0
"""


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            out[k] = v
    return out


def test_udhcpc_gets_lease(netdev_sandbox, netdev_daemon):
    sb, daemon = netdev_sandbox, netdev_daemon

    out = os.path.join(sb.dir, "udhcpc.result")
    script = os.path.join(sb.dir, "udhcpc.script")
    with open(script, "w") as f:
        f.write(SCRIPT.format(out=out))
    os.chmod(script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)

    t0 = time.monotonic()
    cp = sb.netns_exec("busybox", "udhcpc", "-i", sb.ns_ifname, "-n", "-q", "-f",
                       "-t", "5", "-T", "1", "-s", script, check=False, timeout=30)
    took = time.monotonic() - t0
    diag = (f"udhcpc rc={cp.returncode} in {took:.1f}s\nstdout:\n{cp.stdout}\n"
            f"stderr:\n{cp.stderr}\ncoverage: {daemon.coverage()}")
    assert cp.returncode == 0, diag
    assert os.path.exists(out), diag
    got = read_kv(out)
    assert got["ip"] == "10.0.0.11", (got, diag)
    assert got["subnet"] == "255.255.255.0" or got["mask"] == "24", got
    assert got["router"].split() == ["10.0.0.1"], got
    assert got["dns"].split() == ["10.0.0.1", "8.8.8.8"], got
    assert got["lease"] == "3600", got
    assert got["serverid"] == "10.0.0.1", got
    assert got["domain"] == "ovn.test", got
    assert got["mtu"] == "1400", got
    cov = daemon.coverage()
    # DISCOVER + REQUEST at least (udhcpc may retransmit)
    assert cov.get("pinctrl_total_pin_pkts", 0) >= 2, cov
    print(f"udhcpc obtained its lease in {took:.2f}s")
