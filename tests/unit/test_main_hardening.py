"""Issue 15: the main thread survives what the Southbound hands it, and the
smaller defences (log rate limits).  Pure: no server."""

from __future__ import annotations

import pytest

from pinctrl.actions import dhcpv4
from pinctrl.actions.replies import LogLine, Reporter
from pinctrl.db import dns_cache, ra_plan
from tests.helpers import VlogRecorder

# More digits than Python 3.11's int() accepts (4300): int() raises.
HUGE = "9" * 5000


# --- numbers with thousands of digits in SB rows ---------------------------------

def test_ra_option_with_huge_number_is_ignored_like_any_bad_int():
    opts = {"ipv6_ra_max_interval": HUGE, "ipv6_ra_mtu": "-" + HUGE,
            "ipv6_ra_min_interval": "0" * 5000 + "5"}
    assert ra_plan.smap_get_int(opts, "ipv6_ra_max_interval", 600) == 600
    assert ra_plan.smap_get_int(opts, "ipv6_ra_mtu", 0) == 0
    # Leading zeros are not magnitude: still the C int 5.
    assert ra_plan.smap_get_int(opts, "ipv6_ra_min_interval", 1) == 5


@pytest.mark.parametrize("value, v4, v6", [
    # An octet or prefix with 5000 digits ends the scan, as any out-of-range
    # number does (OVN extract_ip_addresses): what came before is kept.
    ("10.0.0.1 1" + HUGE + ".0.0.1", ["0a000001"], []),
    ("10.0.0.1 10.0.0.2/" + HUGE, ["0a000001"], []),
    ("10.0.0.1 2001:db8::1/" + HUGE, ["0a000001"], []),
    ("10.0.0.1/-" + HUGE, [], []),
    # Leading zeros: still in range.
    ("0000000000000000000010.0.0.1/00000000000000000024", ["0a000001"], []),
    ("2001:db8::1/" + "0" * 5000 + "64", [], ["20010db8" + "0" * 23 + "1"]),
])
def test_dns_addresses_with_huge_numbers_are_parsed_not_raised(value, v4, v6):
    got4, got6 = dns_cache.parse_ip_addresses(value)
    assert [a.hex() for a in got4] == v4
    assert [a.hex() for a in got6] == v6


def test_dns_row_with_huge_number_leaves_the_other_rows_served():
    cache = dns_cache.build_dns_cache([
        ("1", {"bad.test": "1" + HUGE + ".0.0.1"}, [1]),
        ("2", {"vm1.test": "10.0.0.11"}, [1])])
    assert cache[1][b"vm1.test"].ipv4 == (bytes([10, 0, 0, 11]),)
    assert cache[1][b"bad.test"].ipv4 == ()


# --- DHCPDECLINE -----------------------------------------------------------------

def test_dhcpdecline_log_is_rate_limited():
    """A VM sending DECLINEs in a loop must not fill the disk: the decline
    site has a limit (23.03 logs every one)."""
    rec = VlogRecorder()
    reporter = Reporter(rec, site_limits=dhcpv4.SITE_LIMITS)
    line = LogLine("info", "DHCPDECLINE from 50:54:00:00:00:01, 10.0.0.11 "
                           "duplicated", "decline")
    for _ in range(1000):
        reporter.log(line, "pinctrl_dhcpv4_decline")
    rate, burst = dhcpv4.SITE_LIMITS["decline"] or (0, 0)
    assert 0 < len(rec.lines) <= burst + 1, len(rec.lines)
