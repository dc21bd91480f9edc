"""pinctrl-daemon(8), generated from the argument parser that `--help`
prints (pinctrl.daemon.cli.build_parser), so the two cannot drift.

    PYTHONPATH=src python3 packaging/manpage.py [--version V] [--output F]

From the parser: NAME and DESCRIPTION (its description), OPTIONS (every
option group, the help texts with their defaults), and every "heading:"
section of the epilog (EXAMPLES, FILES, ENVIRONMENT, SIGNALS, ...).  What
--help has no room for is kept here: RUN MODES, RUNTIME MANAGEMENT
COMMANDS (tests check the list against the commands the daemon
registers) and SEE ALSO.  The layout follows ovn-controller(8).

Run at package build time (debian/rules) and by the tests; pure apart
from reading the parser.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field

PAGE = "pinctrl-daemon"
SECTION = 8

# Where the Debian package puts the split-mode drop-ins and the docs.
DOC_DIR = "/usr/share/doc/pinctrl-daemon"

RUN_MODES = [
    ("Take-over mode (the default)",
     "pinctrl-daemon is the only controller answering the packet-ins of "
     "BRIDGE.  Never run it next to an ovn-controller that serves the same "
     "bridge: every service connection that asks for packet-ins gets all of "
     "them, so both would answer.  To take over, stop ovn-controller with "
     "`ovn-appctl -t ovn-controller exit --restart` (its flows stay) and "
     "start pinctrl-daemon.  Nobody programs the bridge after that: new "
     "ports get no flows and learnt neighbours never become flows."),
    ("Split mode (--proxy-rundir PDIR)",
     "pinctrl-daemon runs beside a live ovn-controller.  It serves "
     "PDIR/BRIDGE.mgmt to ovn-controller, started with OVS_RUNDIR=PDIR, "
     "and forwards that connection to DIR/BRIDGE.mgmt, so ovn-controller "
     "keeps programming the flows.  The packet-ins of the opcodes this "
     "daemon answers (--own-opcodes, --pass-opcodes) are answered here and "
     "do not reach ovn-controller; the others are passed on.  systemd "
     "drop-ins for both services are in "
     f"{DOC_DIR}/examples/split-mode/."),
]

# (command, arguments, description): `ovs-appctl -t pinctrl-daemon
# COMMAND`.  The tests compare this list with the commands the daemon
# registers (support/appctl.py, python-ovs's built-ins, exit).
COMMANDS = [
    ("pinctrl/show", "",
     "Chassis, bridge, OpenFlow state and version, OpenFlow (re)connections "
     "and the last error, Southbound state, remotes and the server in use "
     "with its role, Southbound row counts, cache and queue sizes, thread "
     "health, systemd state, metrics URL and uptime."),
    ("pinctrl/dns-cache", "",
     "The DNS records dns_lookup answers from, per datapath tunnel key."),
    ("pinctrl/mac-bindings", "",
     "Learnt neighbours not yet in the Southbound MAC_Binding table "
     "(retried until written), how many were written, and the last ones "
     "written."),
    ("pinctrl/buffered-packets", "",
     "How many next hops arp and nd_ns are waiting for, and how many frames "
     "wait with them."),
    ("pinctrl/garp", "",
     "The gratuitous ARP and RARP announcements of this chassis."),
    ("pinctrl/ipv6-ra", "",
     "The router ports sending periodic Router Advertisements, their "
     "interval range and the port they are injected into."),
    ("pinctrl/bfd", "",
     "The BFD sessions of this chassis as planned from the Southbound BFD "
     "table."),
    ("pinctrl/prefix-delegation", "",
     "The router ports this chassis asks a delegated IPv6 prefix for "
     "(DHCPv6 prefix delegation) and the ports it talks through."),
    ("coverage/show", "",
     "Every coverage counter since start: packet-ins per opcode "
     "(pinctrl_pin_ACTION), drops by reason (pinctrl_drop_*, "
     "ofconn_drop_*), resumes, Southbound writes, keep-alive events."),
    ("memory/show", "",
     "Replicated IDL cells per database, sizes of the shared caches and "
     "queues, resident and peak memory."),
    ("vlog/list", "", "The log modules and their levels."),
    ("vlog/set", "SPEC", "Set log levels, as -v SPEC does."),
    ("vlog/reopen", "", "Reopen the log file (after logrotate)."),
    ("vlog/close", "", "Close the log file."),
    ("help", "", "The commands this build has."),
    ("version", "", "The version of pinctrl-daemon."),
    ("exit", "",
     "Exit cleanly: join the handler thread, remove the pidfile."),
]

SEE_ALSO = ["ovn-controller(8)", "ovs-appctl(8)", "ovs-vswitchd(8)",
            "ovn-sb(5)", "ovs-vsctl(8)"]

# Epilog headings, in the order the page shows them; others follow.
_EPILOG_ORDER = ["files", "environment", "signals", "examples"]
_HEADING = re.compile(r"^([a-z][a-z ]*):$")


def esc(text: str) -> str:
    """Text → troff: backslashes escaped, '-' as a minus (options copy and
    paste), a leading '.' or "'" neutralised."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{esc(text)}\\fR"


# --- the epilog ------------------------------------------------------------

@dataclass
class Item:
    term: list[str]                 # its lines (a command may go on)
    text: list[str] = field(default_factory=list)


@dataclass
class EpilogSection:
    heading: str
    items: list[Item] = field(default_factory=list)


def parse_epilog(epilog: str) -> tuple[list[str], list[EpilogSection]]:
    """RawDescription epilog → (free paragraphs, "heading:" sections).  In
    a section, an item starts at indent 2 ("TERM  text" or "TERM" alone),
    deeper lines continue its text, and a TERM ending in a backslash
    continues on the next line."""
    paragraphs: list[str] = []
    sections: list[EpilogSection] = []
    current: EpilogSection | None = None
    para: list[str] = []
    term_open = False

    def flush_para() -> None:
        if para:
            paragraphs.append(" ".join(para))
            para.clear()

    for line in epilog.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if not stripped:
            flush_para()
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_para()
            current = EpilogSection(heading.group(1))
            sections.append(current)
            continue
        if indent == 0 or current is None:
            current = None
            para.append(stripped)
            continue
        if term_open and current.items:
            item = current.items[-1]
            item.term.append(stripped)
            term_open = stripped.endswith("\\")
        elif indent == 2:
            term, text = (re.split(r"\s{2,}", stripped, maxsplit=1)
                          + [""])[:2]
            term_open = term.endswith("\\")
            current.items.append(Item([term], [text] if text else []))
        elif current.items:
            current.items[-1].text.append(stripped)
        else:
            para.append(stripped)
    flush_para()
    return paragraphs, sections


# --- options ---------------------------------------------------------------

def option_synopsis(action: argparse.Action) -> str:
    """'--br-int=BRIDGE', '--pidfile[=FILE]', '-v [SPEC...]' in troff."""
    metavar = action.metavar or action.dest.upper()
    assert isinstance(metavar, str), metavar
    out = []
    for opt in action.option_strings:
        long = opt.startswith("--")
        if action.nargs == 0:
            out.append(bold(opt))
        elif action.nargs == "?":
            out.append(f"{bold(opt)}[{bold('=') if long else ''}"
                       f"{italic(metavar)}]")
        elif action.nargs == "*":
            out.append(f"{bold(opt)} [{italic(metavar)}...]")
        elif long:
            out.append(f"{bold(opt + '=')}{italic(metavar)}")
        else:
            out.append(f"{bold(opt)} {italic(metavar)}")
    return ", ".join(out)


def option_help(parser: argparse.ArgumentParser,
                action: argparse.Action) -> str:
    """The help text as --help prints it (%(default)s expanded)."""
    if not action.help:
        return ""
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split())


def _groups(parser: argparse.ArgumentParser
            ) -> list[tuple[str, str, list[argparse.Action]]]:
    """(title, description, options) per group; argparse's catch-all
    'options' group (--help, --version) last, as 'Other options'."""
    out, other = [], []
    for g in parser._action_groups:
        actions = [a for a in g._group_actions
                   if a.option_strings and a.help != argparse.SUPPRESS]
        if not actions:
            continue
        if g.title in ("options", "optional arguments"):
            other = actions
        else:
            out.append((g.title or "", g.description or "", actions))
    if other:
        out.append(("Other options", "", other))
    return out


# --- the page --------------------------------------------------------------

def installed_paths(text: str) -> str:
    """docs/X.md of the source tree → where the package installs it."""
    return re.sub(r"\bdocs/([\w.-]+\.md)", DOC_DIR + r"/\1", text)


def sentence(text: str) -> str:
    """A help fragment as a sentence: capital first letter, final period."""
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _para(text: str) -> list[str]:
    return [".PP", esc(installed_paths(text))]


def _items(items: list[tuple[str, str]]) -> list[str]:
    """.TP entries (term already in troff)."""
    out = []
    for term, text in items:
        out += [".TP", term]
        if text:
            out.append(esc(installed_paths(text)))
    return out


def _examples(items: list[Item]) -> list[str]:
    """Each command as typed (its lines kept), its explanation indented."""
    out = []
    for it in items:
        typed = [it.term[0]] + ["    " + line for line in it.term[1:]]
        out += [".PP", ".nf", *(bold(line) for line in typed), ".fi"]
        if it.text:
            out += [".RS", esc(sentence(" ".join(it.text))), ".RE"]
    return out


def render(parser: argparse.ArgumentParser, version: str,
           date: str) -> str:
    """The whole page, troff (man macros)."""
    raw = (parser.description or "").strip().split("\n\n")
    summary = re.split(r"\.\s", raw[0], maxsplit=1)[0].rstrip(".")
    desc = [" ".join(p.split()) for p in raw]
    free, epilog = parse_epilog(parser.epilog or "")

    lines = [
        f'.\\" Generated by packaging/manpage.py from the parser of {PAGE} '
        "--help; do not edit.",
        f'.TH "{PAGE}" {SECTION} "{date}" "{PAGE} {esc(version)}" '
        '"OVN Manual"',
        # Left-aligned, no hyphenation: paths and options stay whole.
        ".ad l", ".nh",
        ".SH NAME", f"{esc(PAGE)} \\- {esc(' '.join(summary.split()))}",
        ".SH SYNOPSIS", f"{bold(PAGE)} [{italic('options')}]",
        ".SH DESCRIPTION",
    ]
    for p in desc + free:
        lines += _para(p)

    lines.append('.SH "RUN MODES"')
    lines += _items([(bold(title), text) for title, text in RUN_MODES])

    lines.append(".SH OPTIONS")
    for title, gdesc, actions in _groups(parser):
        lines.append(f'.SS "{esc(title[:1].upper() + title[1:])}"')
        if gdesc:
            lines += _para(sentence(gdesc))
        lines += _items([(option_synopsis(a),
                          sentence(option_help(parser, a)))
                         for a in actions])

    lines += ['.SH "RUNTIME MANAGEMENT COMMANDS"',
              *_para("ovs-appctl(8) sends these to a running "
                     f"{PAGE}: `ovs-appctl -t {PAGE} COMMAND` with "
                     "--pidfile, otherwise "
                     f"`ovs-appctl -t DIR/{PAGE}.PID.ctl COMMAND`.")]
    lines += _items([(bold(cmd) + (f" {italic(args)}" if args else ""),
                      text) for cmd, args, text in COMMANDS])

    order = {h: i for i, h in enumerate(_EPILOG_ORDER)}
    for sec in sorted(epilog, key=lambda s: order.get(s.heading, 99)):
        lines.append(f'.SH "{esc(sec.heading.upper())}"')
        if sec.heading == "examples":
            lines += _examples(sec.items)
        else:
            lines += _items([(bold(" ".join(it.term)),
                              sentence(" ".join(it.text)))
                             for it in sec.items])

    lines += ['.SH "SEE ALSO"',
              ",\n".join(_see_also(ref) for ref in SEE_ALSO) + ".",
              *_para(f"{DOC_DIR}/operations.md: the service, the commands, "
                     "the metrics and troubleshooting.")]
    return "\n".join(lines) + "\n"


def _see_also(ref: str) -> str:
    name, _, sec = ref.partition("(")
    return f"{bold(name)}({sec}"


def _date() -> str:
    """Reproducible: SOURCE_DATE_EPOCH (dpkg-buildpackage sets it from
    debian/changelog), else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = time.gmtime(int(epoch)) if epoch else time.gmtime()
    return time.strftime("%Y-%m-%d", t)


def main(argv: list[str] | None = None) -> int:
    import pinctrl
    from pinctrl.daemon.cli import build_parser

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", default=pinctrl.__version__)
    ap.add_argument("--output", help="file to write (default: stdout)")
    args = ap.parse_args(argv)
    page = render(build_parser(), args.version, _date())
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
