"""DnsCacheBuilder: updating rows one at a time gives exactly the cache a
from-scratch build gives, whatever the order of edits."""

from __future__ import annotations

import random

from pinctrl.db.dns_cache import DnsCacheBuilder, build_dns_cache


def random_row(rng: random.Random, key: int
               ) -> tuple[str | None, dict, list[int]]:
    # dns_id is an NB row UUID: unique per row.
    dns_id = rng.choice([None, f"{rng.randrange(5)}-{key}"])
    records = {f"vm{rng.randrange(6)}.test":
               rng.choice(["10.0.0.1", "10.0.0.2 fd00::2", "fd00::3",
                           "10.0.0.4 10.0.0.5"])
               for _ in range(rng.randrange(4))}
    return dns_id, records, rng.sample([1, 2, 3], rng.randrange(1, 3))


def test_incremental_equals_full_build():
    rng = random.Random(7)
    builder = DnsCacheBuilder()
    rows: dict[int, tuple] = {}
    for _ in range(500):
        key = rng.randrange(8)
        if rng.random() < 0.2:
            rows.pop(key, None)
            builder.remove_row(key)
        else:
            rows[key] = random_row(rng, key)
            builder.set_row(key, *rows[key])
        full = build_dns_cache(rows[k] for k in sorted(rows))
        got = builder.build()
        assert {dp: dict(n) for dp, n in got.items()} == \
            {dp: dict(n) for dp, n in full.items()}


def test_smaller_dns_id_wins_a_shared_name():
    b = DnsCacheBuilder()
    b.set_row("x", "zz", {"vm.test": "10.0.0.9"}, [1])
    b.set_row("y", "aa", {"vm.test": "10.0.0.1"}, [1])
    assert b.build()[1][b"vm.test"].ipv4 == (bytes([10, 0, 0, 1]),)
    b.set_row("y", None, {"vm.test": "10.0.0.1"}, [1])   # dns_id removed
    assert b.build()[1][b"vm.test"].ipv4 == (bytes([10, 0, 0, 9]),)


def test_parsed_values_are_shared_and_trimmed():
    b = DnsCacheBuilder()
    for i in range(3000):
        b.set_row(0, "a", {"vm.test": f"10.0.{i // 250}.{i % 250}"}, [1])
        b.build()
    assert len(b._parsed) <= 2 * 1 + 1024 + 1
