"""Prometheus metrics (opt-in: --metrics-address HOST:PORT).

Nothing here is on the packet path: the pinctrl_handler thread feeds its
dispatch latency histogram (handler/latency.py) and the coverage counters,
and the values are turned into Prometheus families only when scraped, by a
custom collector running in prometheus_client's HTTP thread, which reads:

  * coverage.snapshot()          every coverage counter (any thread)
  * source.dispatch_latency()    per-opcode dispatch time histograms,
                                 already keyed by action name
  * source.thread_health()       keep-alive state of each thread
  * source.metrics_gauges()      connection/readiness gauges (main thread
                                 publishes them; plain reads)
  * source.queue_depths()        sizes of the shared queues/caches

prometheus_client is imported only when the endpoint is started, so the
daemon runs without it unless metrics are asked for.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, cast

import ovs.vlog

from pinctrl.support import coverage

if TYPE_CHECKING:
    from prometheus_client.registry import Collector as PromCollector

    from pinctrl.daemon.keepalive import ThreadHealth
    from pinctrl.handler.latency import Histogram

vlog = ovs.vlog.Vlog("metrics")

GAUGE_HELP = {
    "ready": "1 once the Southbound DB was synced and OpenFlow connected "
             "(systemd READY=1)",
    "southbound_connected": "1 while the Southbound IDL is synced",
    "openflow_connected": "1 while the OpenFlow connection to the bridge "
                          "is up",
    "uptime_seconds": "Seconds since the daemon started",
    "ovsdb_json_c_parser": "1 if python-ovs parses OVSDB JSON with its C "
                           "extension (ovs._json), 0 if in pure Python",
    "sb_write_backlog": "Southbound writes still to do (learnt bindings, "
                        "claims, events), every writer",
    "sb_write_backlog_age_seconds": "Age of the oldest Southbound write "
                                    "still to do",
}


class MetricsSource(Protocol):
    """What the collector reads from the daemon (any thread may call)."""

    def thread_health(self) -> list[ThreadHealth]: ...

    def dispatch_latency(self) -> Mapping[str, Histogram]: ...

    def metrics_gauges(self) -> dict[str, float]: ...

    def queue_depths(self) -> dict[str, int]: ...


def _le(bound: float) -> str:
    """A bucket bound as the "le" label (Prometheus text format)."""
    return "+Inf" if math.isinf(bound) else repr(bound)


class Collector:
    """prometheus_client custom collector; collect() runs in the HTTP
    server's thread on every scrape."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

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
        for name, h in sorted(self.source.dispatch_latency().items()):
            lat.add_metric([name], [(_le(b), n) for b, n in h.buckets],
                           h.total)
        yield lat

        alive = GaugeMetricFamily(
            "pinctrl_thread_alive", "1 while the thread goes round its loop",
            labels=["thread"])
        age = GaugeMetricFamily(
            "pinctrl_thread_last_loop_age_seconds",
            "Seconds since the thread last marked itself alive",
            labels=["thread"])
        for t in self.source.thread_health():
            alive.add_metric([t.name], 1 if t.state == "alive" else 0)
            age.add_metric([t.name], t.age)
        yield alive
        yield age

        for name, gauge in sorted(self.source.metrics_gauges().items()):
            yield GaugeMetricFamily(f"pinctrl_{name}",
                                    GAUGE_HELP.get(name, name), value=gauge)

        q = GaugeMetricFamily("pinctrl_queue_depth",
                              "Entries in a shared queue or cache",
                              labels=["queue"])
        for name, n in sorted(self.source.queue_depths().items()):
            q.add_metric([name], n)
        yield q


def parse_address(text: str) -> tuple[str, int]:
    """Pure.  'HOST:PORT', '[V6]:PORT' or ':PORT' → (host, port).  No
    host means loopback, 127.0.0.1: the endpoint has no authentication, so
    every address takes an explicit 0.0.0.0:PORT or [::]:PORT.  Raises
    ValueError."""
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
    return host or "127.0.0.1", n


class MetricsServer:
    """The HTTP endpoint (prometheus_client's server, its own daemon
    thread).  start()/close() are called by the main thread."""

    def __init__(self, source: MetricsSource, host: str, port: int) -> None:
        self.source, self.host, self.port = source, host, port
        # prometheus_client's WSGI server (>= 0.20 returns it), or None.
        self._httpd: Any = None

    def start(self) -> None:
        """Bind and serve; raises OSError (port in use, ...) or
        ImportError (prometheus_client missing)."""
        import socket
        import threading
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from prometheus_client import CollectorRegistry, make_wsgi_app
        from prometheus_client.exposition import ThreadingWSGIServer

        registry = CollectorRegistry(auto_describe=False)
        # Ours is duck-typed (collect()); prometheus_client's typed releases
        # (Debian's 0.16) declare an ABC it need not inherit at run time.
        registry.register(cast("PromCollector", Collector(self.source)))

        # Our own server rather than start_http_server(): Debian's 0.16
        # returns nothing from it, so the port bound for ":0" (tests) and
        # the server to shut down would be unknown.
        class Server(ThreadingWSGIServer):
            address_family = (socket.AF_INET6 if ":" in self.host
                              else socket.AF_INET)

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = make_server(self.host, self.port, make_wsgi_app(registry),
                            Server, handler_class=QuietHandler)
        threading.Thread(target=httpd.serve_forever, name="metrics",
                         daemon=True).start()
        self._httpd = httpd
        self.port = httpd.server_address[1]
        vlog.info(f"metrics on http://{self.host}:{self.port}/metrics")

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
