"""Integration-test harness: a private real-OVS sandbox (sandbox.Sandbox), the
daemon under test (sandbox.Daemon), golden exchange replay and a pcap reader."""

from .sandbox import (  # noqa: F401
    GOLDEN,
    Daemon,
    Packet,
    ReplayResult,
    Sandbox,
    SandboxError,
    classify_background,
    daemon_unavailable,
    load_exchange,
    missing_prerequisites,
    replay_exchange,
)
