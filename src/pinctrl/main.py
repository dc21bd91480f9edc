"""pinctrl-daemon's entry point (pyproject: pinctrl.main:main): parse the
command line, apply the options, hand over to the daemon (daemon/)."""

from __future__ import annotations

import os
import sys

from pinctrl.support import runtime

runtime.keep_eventlet_out()     # before anything imports ovs.poller

from pinctrl.daemon.cli import EXIT_FAILURE, PROGRAM, build_parser, configure  # noqa: E402
from pinctrl.daemon.daemon import serve  # noqa: E402

__all__ = ["build_parser", "main"]      # build_parser: the packaging test


# Files and sockets we create (log file, pidfile, control socket) are
# not for other users: the control socket can stop the daemon.
UMASK = 0o027


def main(argv: list[str] | None = None) -> int:
    """Main thread, before any other exists.  Returns the exit code."""
    args = build_parser().parse_args(argv)
    os.umask(UMASK)
    runtime.bound_gil_wait()
    runtime.tune_gc()
    try:
        configure(args)
    except Exception as e:          # bad SSL file, log file, -v spec, ...
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
