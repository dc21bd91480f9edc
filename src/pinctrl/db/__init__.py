"""Main thread only: the Southbound and local OVS databases, the snapshots
built from them, and the Southbound writers.  Never imported by handler/ or
actions/."""
