"""Makes fuzz/corpus: real queries, as dig, kdig, nsupdate and dnspython send them, caught
by a listener on 127.0.0.1 that answers them from the fuzz target's snapshot (so that a
client which asks again, over TCP after TC=1 or without EDNS after FORMERR, is caught too).

    .venv/bin/python fuzz/capture.py        # rewrites fuzz/corpus/*.bin
"""

from __future__ import annotations

import hashlib
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import dns.message
import dns.query
import dns.tsigkeyring
import dns.update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fuzz.answer import CORPUS, NOW, PEER, core

ZONE = "fuzz.example.test"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="  # [keys.fuzz] of fuzz/dynserver.toml
caught: dict[str, bytes] = {}
current = ["?"]


def keep(data: bytes) -> None:
    caught[f"{current[0]}-{hashlib.sha1(data).hexdigest()[:10]}"] = data


class Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        keep(data)
        reply = core().snapshot.answer(data, False, PEER)
        if isinstance(reply, bytes):
            sock.sendto(reply, self.client_address)


class Tcp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        while (head := sock.recv(2, socket.MSG_WAITALL)) and len(head) == 2:
            data = sock.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
            keep(data)
            reply = core().snapshot.answer(data, True, PEER)
            for message in [reply] if isinstance(reply, bytes) else list(getattr(reply, "messages", [])):
                sock.sendall(len(message).to_bytes(2, "big") + message)


def run(name: str, command: list[str], stdin: str = "") -> None:
    current[0] = name
    subprocess.run(command, input=stdin, text=True, capture_output=True, timeout=30)


def main() -> None:
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
    port = udp.server_address[1]
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
    for server in (udp, tcp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    at = ["@127.0.0.1", "-p", str(port)]
    for qname, qtype, options in [
        (ZONE, "SOA", []),
        (f"app.{ZONE}", "A", []),
        (f"APP.{ZONE}", "A", ["+noedns"]),
        (f"v6.{ZONE}", "AAAA", ["+dnssec"]),
        (f"www.{ZONE}", "A", ["+nocookie"]),
        (f"x.wild.{ZONE}", "TXT", ["+bufsize=4096"]),
        (f"big.{ZONE}", "TXT", ["+ignore"]),
        (f"nothing.{ZONE}", "A", ["+nsid"]),
        (f"a.b.sub.{ZONE}", "A", ["+norecurse"]),
        (ZONE, "ANY", []),
        (ZONE, "AXFR", []),
        (ZONE, "IXFR=0", []),
        ("version.bind", "TXT", ["-c", "CH"]),
        (f"_sip._udp.{ZONE}", "SRV", ["+tcp"]),
        (ZONE, "SOA", ["+opcode=notify"]),
        (ZONE, "SOA", ["+ednsopt=8:00012000c0000200", "+subnet=192.0.2.0/24"]),
        (ZONE, "SOA", ["+edns=1"]),
        (ZONE, "SOA", ["-y", f"hmac-sha256:fuzz:{SECRET}"]),
    ]:
        run(f"dig-{qtype.split('=')[0].lower()}", ["dig", *at, qname, qtype, "+tries=1", "+time=2", *options])
    for qname, qtype, options in [
        (f"app.{ZONE}", "A", []),
        (f"mail.{ZONE}", "MX", ["+nsid", "+cookie"]),
        (ZONE, "AXFR", []),
        (f"alias.{ZONE}", "CNAME", ["+padding=64"]),
    ]:
        run(f"kdig-{qtype.lower()}", ["kdig", *at, qname, qtype, "+retry=0", "+time=2", *options])
    update = f"server 127.0.0.1 {port}\nzone {ZONE}\nupdate add bravo.app.{ZONE} 30 A 192.0.2.99\nsend\n"
    run("nsupdate", ["nsupdate", "-y", f"hmac-sha256:fuzz:{SECRET}"], update)
    run("knsupdate", ["knsupdate", "-y", f"hmac-sha256:fuzz:{SECRET}"], update)
    # dnspython: a signed UPDATE and a signed IXFR at the target's fixed clock (NOW).
    current[0] = "dnspython"
    keyring = dns.tsigkeyring.from_text({"fuzz": SECRET})
    with mock.patch("time.time", return_value=float(NOW)):
        message = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm="hmac-sha256")
        message.replace(f"bravo.app.{ZONE}.", 30, "A", "192.0.2.98")
        keep(message.to_wire())
        query = dns.message.make_query(ZONE, "IXFR")
        query.use_tsig(keyring, algorithm="hmac-sha256")
        keep(query.to_wire())
    udp.shutdown()
    tcp.shutdown()
    time.sleep(0.1)
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("*.bin"):
        old.unlink()
    for name, data in sorted(caught.items()):
        (CORPUS / f"{name}.bin").write_bytes(data)
    print(f"{len(caught)} queries in {CORPUS}")


if __name__ == "__main__":
    main()
