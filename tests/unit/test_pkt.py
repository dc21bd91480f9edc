"""pinctrl.packet.headers: checksum and header parsers."""

import struct

import pytest

from pinctrl.packet import headers as pkt


def _ipv4(ihl_words=5, tot_len=None, proto=17, payload=b"", opts=b""):
    hdr_len = ihl_words * 4
    tot = hdr_len + len(payload) if tot_len is None else tot_len
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl_words, 0, tot, 1, 0, 64,
                      proto, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return hdr + opts + payload


def test_csum_rfc1071_example():
    # RFC 1071 §3 example: the one's-complement sum is 0xddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert pkt.csum(data) == ~0xddf2 & 0xFFFF


def test_csum_odd_length_and_initial():
    assert pkt.csum(b"\x01") == pkt.csum(b"\x01\x00")
    assert pkt.csum(b"\x00\x01", initial=0x0001) == ~0x0002 & 0xFFFF
    assert pkt.csum(b"") == 0xFFFF


def test_csum_of_checksummed_header_is_zero():
    buf = bytearray(_ipv4(payload=b"x" * 8))
    pkt.ipv4_set_csum(buf, 0)
    assert pkt.csum(bytes(buf[:20])) == 0
    # A real header captured from OVN: 45 00 01 a4 ... csum 6f3e.
    hdr = bytearray.fromhex("450001a40001000040116f3e000000000a00000b")
    pkt.ipv4_set_csum(hdr, 0)
    assert hdr[10:12] == b"\x6f\x3e"


def test_ipv4_set_csum_with_options_length():
    buf = bytearray(_ipv4(ihl_words=6, opts=b"\x94\x04\x00\x00"))
    pkt.ipv4_set_csum(buf, 0, 24)
    assert pkt.csum(bytes(buf[:24])) == 0


def test_eth_parse_untagged_single_and_double_tag():
    mac = b"\x00" * 12
    assert pkt.eth_parse(mac + b"\x08\x00") == (0x0800, 14)
    one = mac + b"\x81\x00\x00\x05\x08\x00"
    assert pkt.eth_parse(one) == (0x0800, 18)
    two = mac + b"\x88\xa8\x00\x05\x81\x00\x00\x06\x08\x00"
    assert pkt.eth_parse(two) == (0x0800, 22)
    # A third tag is not parsed, like OVS: its TPID is the ethertype.
    three = mac + b"\x81\x00\x00\x05" * 3 + b"\x08\x00"
    assert pkt.eth_parse(three) == (0x8100, 22)


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00" * 13,
    b"\x00" * 12 + b"\x81\x00\x00\x05\x08",      # tag without inner type
])
def test_eth_parse_truncated(frame):
    assert pkt.eth_parse(frame) is None


def test_ipv4_parse_fields_and_padding():
    ip = _ipv4(payload=b"p" * 10) + b"\0" * 6     # Ethernet padding
    info = pkt.ipv4_parse(b"E" * 14 + ip, 14)
    assert info == (20, 17, 30, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))


def test_ipv4_parse_options():
    ip = _ipv4(ihl_words=7, opts=b"\x01" * 8, payload=b"p")
    assert pkt.ipv4_parse(ip, 0).ihl == 28


@pytest.mark.parametrize("ip", [
    _ipv4()[:19],                          # shorter than 20 bytes
    _ipv4(ihl_words=4),                    # IHL below minimum
    _ipv4(ihl_words=6),                    # options announced, absent
    _ipv4(tot_len=100),                    # total length beyond the frame
    _ipv4(payload=b"x" * 4, tot_len=16),   # total length below IHL
])
def test_ipv4_parse_rejects(ip):
    assert pkt.ipv4_parse(ip, 0) is None


def test_ipv4_parse_bad_offset():
    assert pkt.ipv4_parse(_ipv4(), 100) is None


def test_formatters():
    assert pkt.fmt_mac(bytes.fromhex("5054000000a1")) == "50:54:00:00:00:a1"
    assert pkt.fmt_ip4(bytes([10, 0, 0, 255])) == "10.0.0.255"
