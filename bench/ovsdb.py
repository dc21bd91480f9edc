"""A minimal OVSDB JSON-RPC client (RFC 7047 `transact`) for the bench's
direct NB/SB writes: churn, bulk rows, counting MAC_Binding.

One blocking unix-socket connection, no IDL: the bench writes thousands of
rows per second and must cost as little CPU as possible next to the
processes it measures.  Every caller names its thread in its own docstring;
a Client is used by one thread (or process) only.
"""

from __future__ import annotations

import json
import socket


class OvsdbError(RuntimeError):
    pass


class Client:
    def __init__(self, remote: str, db: str, timeout: float = 60.0) -> None:
        if not remote.startswith("unix:"):
            raise ValueError(f"only unix: remotes ({remote})")
        self.db = db
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(remote[5:])
        self._buf = ""
        self._dec = json.JSONDecoder()
        self._next_id = 0

    def close(self) -> None:
        self.sock.close()

    def _recv_msg(self) -> dict:
        while True:
            s = self._buf.lstrip()
            if s:
                try:
                    msg, end = self._dec.raw_decode(s)
                    self._buf = s[end:]
                    return msg
                except json.JSONDecodeError:
                    pass
            data = self.sock.recv(1 << 20)
            if not data:
                raise OvsdbError("connection closed")
            self._buf += data.decode()

    def transact(self, *ops: dict) -> list:
        """Run `ops` in one transaction; the per-op results.  Raises
        OvsdbError if the transaction or any op failed."""
        self._next_id += 1
        rid = self._next_id
        self.sock.sendall(json.dumps({"method": "transact", "params": [self.db, *ops],
                                      "id": rid}).encode())
        while True:
            msg = self._recv_msg()
            if msg.get("method") == "echo":
                self.sock.sendall(json.dumps({"result": msg["params"], "error": None,
                                              "id": msg["id"]}).encode())
                continue
            if msg.get("id") != rid:
                continue
            if msg.get("error"):
                raise OvsdbError(str(msg["error"]))
            res = msg["result"]
            for r in res:
                if isinstance(r, dict) and "error" in r:
                    raise OvsdbError(f"{r} in {json.dumps(ops)[:300]}")
            return res

    def select(self, table: str, where: list, columns: list[str]) -> list[dict]:
        return self.transact({"op": "select", "table": table, "where": where,
                              "columns": columns})[0]["rows"]


def uuid_of(client: Client, table: str, where: list) -> str:
    rows = client.select(table, where, ["_uuid"])
    if len(rows) != 1:
        raise OvsdbError(f"{table} {where}: {len(rows)} rows")
    return rows[0]["_uuid"][1]


def oset(items: list) -> list:
    return ["set", items]


def omap(pairs: list) -> list:
    return ["map", pairs]


def ip_str(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def mac_binding_row(dp_uuid: str, port: str, ip: int) -> dict:
    """A MAC_Binding row for IPv4 `ip` (an int) on router port `port`."""
    return {"op": "insert", "table": "MAC_Binding",
            "row": {"logical_port": port, "ip": ip_str(ip),
                    "mac": "0e:" + ":".join(f"{ip >> s & 255:02x}" for s in (32, 24, 16, 8, 0)),
                    "datapath": ["uuid", dp_uuid]}}


def insert_mac_bindings(sb: Client, dp_uuid: str, port: str, first_ip: int, n: int,
                        chunk: int = 2000) -> None:
    """n MAC_Binding rows first_ip.. (chunked transactions)."""
    for i in range(0, n, chunk):
        sb.transact(*[mac_binding_row(dp_uuid, port, first_ip + j)
                      for j in range(i, min(n, i + chunk))])


def delete_mac_bindings(sb: Client, port: str) -> None:
    sb.transact({"op": "delete", "table": "MAC_Binding",
                 "where": [["logical_port", "==", port]]})


def count_mac_bindings(sb: Client, port: str) -> int:
    return len(sb.select("MAC_Binding", [["logical_port", "==", port]], ["_uuid"]))


def dns_records(nb: Client, dns_name: str, add: dict[str, str] | None = None,
                remove: list[str] | None = None) -> None:
    """Add/remove records (name -> "ip") of the NB DNS row external_ids:name=dns_name."""
    muts = []
    if remove:
        muts.append(["records", "delete", oset(remove)])
    if add:
        muts.append(["records", "insert", omap(list(add.items()))])
    if muts:
        nb.transact({"op": "mutate", "table": "DNS",
                     "where": [["external_ids", "includes", omap([["name", dns_name]])]],
                     "mutations": muts})


def bulk_dns_records(nb: Client, dns_name: str, names: list[str], chunk: int = 2000,
                     remove: bool = False) -> None:
    for i in range(0, len(names), chunk):
        part = names[i:i + chunk]
        if remove:
            dns_records(nb, dns_name, remove=part)
        else:
            dns_records(nb, dns_name, add={n: ip_str((10 << 24 | 4 << 16) + i + k)
                                           for k, n in enumerate(part)})
