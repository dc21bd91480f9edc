"""The test bed: real OVS / OVN processes, the daemon under test and the
golden recording, for tests/ and bench/ alike (importable from the
repository root; neither imports the other's modules through it).

    processes          children started and stopped by pid, commands.log
    netns              network namespaces as hosts (veths, offloads)
    ovs_sandbox        Sandbox: ovsdb-server, ovs-vswitchd --enable-dummy,
                       the golden SB ovsdb-server and flows; SbServer (the
                       SB alone); step_until_change
    live_sandbox       LiveSandbox: the golden topology live, real
                       ovn-northd and ovn-controller through the daemon's
                       proxy (split mode)
    daemon_under_test  pinctrl-daemon against a Sandbox; UnixctlClient
    golden             loading and replaying tests/golden exchanges
    pcap               the tx_pcap reader; Packet
    wire_summary       one line per frame, for people (pure)
    demo               `make run`

Import the submodules themselves: this package re-exports nothing, so a
pure test that needs only `testbed.golden` starts no process machinery.
"""
