"""`make bench`: pinctrl-daemon side by side with real ovn-controller 23.03.

    python -m bench [--quick] [--profile]      (root; see README "Benchmark")

Modules: topology (the OVN sandbox), frames (requests/answers, pure),
rawsock (AF_PACKET + sendmmsg/recvmmsg), loadgen (closed/open loop),
ovsdb (a minimal JSON-RPC client: churn, bulk rows, counts), churn (the
background SB writer process), procstat (CPU/RSS), report (table, JSON
lines), run (the orchestration).
"""
