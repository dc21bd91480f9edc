"""Who answers which packet-in in split mode: this daemon or ovn-controller.

Pure code.  By default the daemon owns every opcode it implements and
passes the others (those whose handler only counts them, actions/not_yet)
to ovn-controller's pinctrl, so nothing is black-holed while features are
missing.  --own-opcodes / --pass-opcodes move single opcodes (by OVN name
or number) across.  The periodic duties (gARP/RARP, IPv6 RA) are always the
daemon's: it always runs those jobs, so ovn-controller's copies would be
sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from pinctrl.proxy.classify import DUTY_GARP, DUTY_RA

DUTY_TEXT = {DUTY_GARP: "gARP/RARP announcements",
             DUTY_RA: "periodic IPv6 RA"}


class OwnershipError(ValueError):
    """An --own-opcodes / --pass-opcodes value that names no opcode, or an
    opcode given to both."""


@dataclass(frozen=True)
class Ownership:
    """'owned': opcodes whose packet-ins the daemon answers and the proxy
    drops on ovn-controller's connections; every other opcode in 'names'
    (and any opcode unknown to this build) reaches ovn-controller.
    Immutable: the main thread builds it, the proxy and handler threads
    read it without a lock."""
    owned: frozenset[int]
    names: Mapping[int, str]
    duties: frozenset[str] = frozenset((DUTY_GARP, DUTY_RA))

    def owns(self, opcode: int) -> bool:
        return opcode in self.owned

    def passed(self) -> list[int]:
        """Known opcodes that go to ovn-controller, ascending."""
        return sorted(op for op in self.names if op not in self.owned)

    def label(self, opcode: int) -> str:
        return f"{self.names.get(opcode, 'opcode')}({opcode})"

    def describe(self) -> list[str]:
        """pinctrl/show lines: who owns what."""
        def opcodes(ops: Iterable[int]) -> str:
            return ", ".join(self.label(op) for op in ops) or "none"
        return [
            f"answered by pinctrl-daemon: {opcodes(sorted(self.owned))}",
            f"passed to ovn-controller: {opcodes(self.passed())}",
            "periodic duties of pinctrl-daemon (ovn-controller's "
            "packet-outs dropped): "
            + (", ".join(DUTY_TEXT[d] for d in sorted(self.duties))
               or "none"),
        ]


def parse_opcodes(values: Sequence[str], names: Mapping[int, str]
                  ) -> set[int]:
    """Opcodes named in 'values' (each a comma-separated list of OVN names,
    e.g. put_dhcp_opts, or numbers).  Raises OwnershipError."""
    by_name = {n: op for op, n in names.items()}
    out: set[int] = set()
    for value in values:
        for word in filter(None, (w.strip() for w in value.split(","))):
            if word.isdigit() and int(word) in names:
                out.add(int(word))
            elif word in by_name:
                out.add(by_name[word])
            else:
                raise OwnershipError(
                    f"unknown opcode {word!r} (known: "
                    + ", ".join(f"{n}({op})" for op, n in sorted(
                        names.items())) + ")")
    return out


def resolve(names: Mapping[int, str], not_implemented: Iterable[int],
            own: Sequence[str] = (), pass_: Sequence[str] = ()
            ) -> Ownership:
    """The ownership for a daemon whose registry knows 'names' (opcode ->
    OVN name) and implements all but 'not_implemented', adjusted by the
    --own-opcodes values 'own' and --pass-opcodes values 'pass_'."""
    add, remove = parse_opcodes(own, names), parse_opcodes(pass_, names)
    both = add & remove
    if both:
        raise OwnershipError(
            "opcode given to both --own-opcodes and --pass-opcodes: "
            + ", ".join(f"{names[op]}({op})" for op in sorted(both)))
    owned = (set(names) - set(not_implemented) | add) - remove
    return Ownership(frozenset(owned), dict(names))
