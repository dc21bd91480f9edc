"""Prometheus metrics (opt-in: --metrics-address HOST:PORT).

Nothing here is on the packet path except DispatchLatency.observe(), which
the pinctrl_handler thread calls once per packet-in: a bisect and two
increments into plain per-opcode lists, no lock, no prometheus_client
object.  The values are turned into Prometheus families only when scraped,
by a custom collector running in prometheus_client's HTTP thread, which
reads:

  * coverage.snapshot()          every coverage counter (any thread)
  * DISPATCH_LATENCY             per-opcode dispatch time histograms
  * source.thread_health()       keep-alive state of each thread
  * source.metrics_gauges()      connection/readiness gauges (main thread
                                 publishes them; plain reads)
  * source.queue_depths()        sizes of the shared queues/caches

A reader may see one observation's bucket before its sum: harmless skew
for monitoring.  prometheus_client is imported only when the endpoint is
started, so the daemon runs without it unless metrics are asked for.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterator, Protocol

import ovs.vlog

from pinctrl.actions import REGISTRY, load_all
from pinctrl.openflow.packet_in import PacketIn, PacketInError
from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("metrics")

# Upper bounds in seconds.  A DHCP answer takes ~50 µs in-process; the top
# buckets catch the pathological cases (GC pauses, a stuck lock).
LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                   5e-3, 1e-2, 2.5e-2, 0.1, 1.0)
GAUGE_HELP = {
    "ready": "1 once the Southbound DB was synced and OpenFlow connected "
             "(systemd READY=1)",
    "southbound_connected": "1 while the Southbound IDL is synced",
    "openflow_connected": "1 while the OpenFlow connection to the bridge "
                          "is up",
    "uptime_seconds": "Seconds since the daemon started",
}
NO_OPCODE = -1          # packet-ins without a readable action header


class DispatchLatency:
    """Per-opcode histogram of dispatch time.  observe() is called by the
    pinctrl_handler thread only; snapshot() by any thread."""

    __slots__ = ("_hists",)

    def __init__(self) -> None:
        # opcode -> [count per bucket ..., count above the last, sum]
        self._hists: dict[int, list[float]] = {}

    def observe(self, pin: PacketIn, seconds: float) -> None:
        try:
            opcode = pin.opcode
        except PacketInError:
            opcode = NO_OPCODE
        h = self._hists.get(opcode)
        if h is None:
            h = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
            self._hists[opcode] = h
        h[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        h[-1] += seconds

    def snapshot(self) -> dict[int, tuple[list[int], float]]:
        """opcode -> (cumulative counts per bucket incl. +Inf, sum)."""
        out = {}
        for opcode, h in list(self._hists.items()):
            h = list(h)
            cum, total = [], 0
            for n in h[:-1]:
                total += int(n)
                cum.append(total)
            out[opcode] = (cum, h[-1])
        return out


DISPATCH_LATENCY = DispatchLatency()


class MetricsSource(Protocol):
    """What the collector reads from the daemon (any thread may call)."""

    def thread_health(self) -> list: ...

    def metrics_gauges(self) -> dict[str, float]: ...

    def queue_depths(self) -> dict[str, int]: ...


def _opcode_name(opcode: int) -> str:
    act = REGISTRY.get(opcode)
    if act is not None:
        return act.name
    return "none" if opcode == NO_OPCODE else str(opcode)


class Collector:
    """prometheus_client custom collector; collect() runs in the HTTP
    server's thread on every scrape."""

    def __init__(self, source: MetricsSource,
                 latency: DispatchLatency = DISPATCH_LATENCY) -> None:
        self.source = source
        self.latency = latency
        load_all()          # opcode names for the labels

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        cov = CounterMetricFamily(
            "pinctrl_coverage", "Coverage counters (ovs-appctl coverage/show)",
            labels=["counter"])
        for name, value in sorted(coverage.snapshot().items()):
            cov.add_metric([name], value)
        yield cov

        lat = HistogramMetricFamily(
            "pinctrl_dispatch_latency_seconds",
            "Time to handle one packet-in, by OVN action opcode",
            labels=["opcode"])
        bounds = [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for opcode, (cum, total) in sorted(self.latency.snapshot().items()):
            lat.add_metric([_opcode_name(opcode)], list(zip(bounds, cum)),
                           total)
        yield lat

        alive = GaugeMetricFamily(
            "pinctrl_thread_alive", "1 while the thread goes round its loop",
            labels=["thread"])
        age = GaugeMetricFamily(
            "pinctrl_thread_last_loop_age_seconds",
            "Seconds since the thread last marked itself alive",
            labels=["thread"])
        for h in self.source.thread_health():
            alive.add_metric([h.name], 1 if h.state == "alive" else 0)
            age.add_metric([h.name], h.age)
        yield alive
        yield age

        for name, value in sorted(self.source.metrics_gauges().items()):
            yield GaugeMetricFamily(f"pinctrl_{name}",
                                    GAUGE_HELP.get(name, name), value=value)

        q = GaugeMetricFamily("pinctrl_queue_depth",
                              "Entries in a shared queue or cache",
                              labels=["queue"])
        for name, n in sorted(self.source.queue_depths().items()):
            q.add_metric([name], n)
        yield q


def parse_address(text: str) -> tuple[str, int]:
    """Pure.  'HOST:PORT', '[V6]:PORT' or ':PORT' (all addresses) →
    (host, port).  Raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"{text!r}: bad port {port!r}") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return host or "0.0.0.0", n


class MetricsServer:
    """The HTTP endpoint (prometheus_client's server, its own daemon
    thread).  start()/close() are called by the main thread."""

    def __init__(self, source: MetricsSource, host: str, port: int) -> None:
        self.source, self.host, self.port = source, host, port
        self._httpd = None

    def start(self) -> None:
        """Bind and serve; raises OSError (port in use, ...) or
        ImportError (prometheus_client missing)."""
        from prometheus_client import CollectorRegistry, start_http_server
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Collector(self.source))
        res = start_http_server(self.port, addr=self.host, registry=registry)
        if isinstance(res, tuple):          # prometheus_client >= 0.20
            self._httpd = res[0]
            self.port = self._httpd.server_address[1]
        vlog.info(f"metrics on http://{self.host}:{self.port}/metrics")

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
