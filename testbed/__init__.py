"""The test bed: real OVS / OVN processes, the daemon under test and the
golden recording, for tests/ and bench/ alike (importable from the
repository root; neither imports the other's modules through it).

    processes          children started and stopped by pid, commands.log
    netns              network namespaces as hosts (veths, offloads)
    ovs_sandbox        Sandbox: ovsdb-server, ovs-vswitchd --enable-dummy,
                       the golden SB ovsdb-server and flows; SbServer (the
                       SB alone); step_until_change
    daemon_under_test  pinctrl-daemon against a Sandbox; UnixctlClient
    golden             loading and replaying tests/golden exchanges
    pcap               the tx_pcap reader; Packet
    demo               `make run`

Import the submodules themselves: this package re-exports nothing, so a
pure test that needs only `testbed.golden` starts no process machinery.
"""
