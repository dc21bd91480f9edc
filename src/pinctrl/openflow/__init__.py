"""OpenFlow 1.5 wire format and the one connection to br-int.mgmt.
Imports no thread-side module."""
