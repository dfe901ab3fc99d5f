#!/usr/bin/python3
"""Reads a pcap (Ethernet) and says whether TCP payloads to/from PORT are TLS and free of plaintext.

usage: pcap_check.py FILE PORT FORBIDDEN...
Exit 0 when: some payload was captured, the first client payload is a TLS handshake record,
and no payload contains a forbidden byte string.
"""
import struct
import sys


def payloads(path, port):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            eth_type = struct.unpack(">H", pkt[12:14])[0]
            ip = pkt[14:]
        elif linktype == 113:  # Linux cooked capture
            eth_type = struct.unpack(">H", pkt[14:16])[0]
            ip = pkt[16:]
        else:
            sys.exit(f"unsupported link type {linktype}")
        if eth_type == 0x0800 and ip and ip[9] == 6:
            tcp = ip[(ip[0] & 15) * 4:]
        elif eth_type == 0x86DD and len(ip) > 40 and ip[6] == 6:
            tcp = ip[40:]
        else:
            continue
        sport, dport = struct.unpack(">HH", tcp[:4])
        body = tcp[(tcp[12] >> 4) * 4:]
        if body and port in (sport, dport):
            yield dport == port, body


def main():
    path, port, forbidden = sys.argv[1], int(sys.argv[2]), [s.encode() for s in sys.argv[3:]]
    seen = list(payloads(path, port))
    if not seen:
        sys.exit("no payload captured")
    first_client = next((b for to_server, b in seen if to_server), b"")
    if not first_client.startswith(b"\x16\x03"):
        sys.exit(f"the first client bytes are not a TLS handshake: {first_client[:16]!r}")
    for _, b in seen:
        for f in forbidden:
            if f in b:
                sys.exit(f"plaintext {f!r} seen on the wire")
    print(f"{len(seen)} payload segments, TLS from the first byte, no plaintext")


main()
