"""Split mode: an OpenFlow proxy in front of br-int for ovn-controller.

ovn-controller 23.03 opens its three bridge connections (ofctrl, pinctrl,
the feature probe) to unix:$OVS_RUNDIR/<br-int>.mgmt.  Started with
OVS_RUNDIR=<proxy rundir>, it reaches this proxy instead, which opens one
connection to the real br-int.mgmt per connection it accepts and forwards
OpenFlow both ways, untouched (framing only: bytes and xids as sent),
except:

* packet-ins of the opcodes this daemon answers: its own connection gets
  the same packet-in from OVS, so ovn-controller's copy is dropped;
* the periodic packet-outs of ovn-controller's pinctrl connection for the
  duties this daemon does (gARP/RARP announcements, periodic IPv6 RA).

ownership.py decides who answers what, classify.py reads the few message
fields that decision needs (pure), session.py forwards one connection pair,
server.py runs the listener and the sessions in the proxy's own thread.
The package imports no thread side: the daemon passes in what it owns.
"""
