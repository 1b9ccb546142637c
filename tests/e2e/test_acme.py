"""ACME DNS-01 end to end (issue 18): the real certbot with its dns-rfc2136 plugin, and
lego with its rfc2136 provider, obtain a wildcard certificate (``*.dyn.example.test`` and
``dyn.example.test``) from pebble, the ACME test server, whose validation asks dynserver
for the challenge TXT records.

While certbot waits for propagation, dig sees both challenge values at dynserver and an
NSD secondary has them by IXFR; after certbot's clean-up both are gone again. Every
process runs on 127.0.0.x and is stopped by PID.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.secondaries import PROGRAMS, Primary, Secondary, secondary
from tests.support import Server, dynserver, free_port, loopback, master_file, poll, require_program, stop

pytestmark = pytest.mark.slow

ZONE = "dyn.example.test"
CHALLENGE = f"_acme-challenge.{ZONE}"
SECRET = base64.b64encode(b"certbot-acme-secret-0123456789ab").decode()
PROPAGATION = 8  # seconds certbot waits after its updates: the window the test digs in


def config(secondary: tuple[str, int]) -> str:
    return f"""\
[server]
dns = ["127.0.0.1:0"]

[zones."{ZONE}"]
file = "zone"

[zones."{ZONE}".transfer]
secondaries = [{{ address = "{secondary[0]}:{secondary[1]}" }}]

[keys.certbot]
secret = "{SECRET}"
acme = ["{ZONE}"]
"""


@contextmanager
def pebble(folder: Path, dns: Server) -> Iterator[tuple[str, Path]]:
    """pebble on 127.0.0.1 with a certificate made here; its directory URL and CA file.
    Its validation authority asks ``dns`` (dynserver) for every challenge."""
    program = require_program("pebble", "pebble")
    openssl = require_program("openssl", "openssl")
    cert, key = folder / "pebble.pem", folder / "pebble.key"
    request = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pebble"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    port, management = free_port("127.0.0.1"), free_port("127.0.0.1")
    (folder / "pebble.json").write_text(
        f"""{{"pebble": {{"listenAddress": "127.0.0.1:{port}",
  "managementListenAddress": "127.0.0.1:{management}",
  "certificate": "{cert}", "privateKey": "{key}",
  "httpPort": {free_port("127.0.0.1")}, "tlsPort": {free_port("127.0.0.1")},
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"""
    )
    # No random sleep before validating, and no nonces rejected on purpose: the test is
    # about DNS, not about a client's retries.
    environment = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    log = folder / "pebble.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [program, "-config", str(folder / "pebble.json"), "-dnsserver", f"{dns.host}:{dns.port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    try:
        poll(lambda: log.read_text(errors="replace"), lambda text: "Listening on" in text, "pebble to listen")
        yield f"https://127.0.0.1:{port}/dir", cert
    finally:
        stop(process)


def dig_txt(host: str, port: int, name: str = CHALLENGE) -> list[str]:
    dig = require_program("dig", "dnsutils")
    done = subprocess.run(
        [dig, f"@{host}", "-p", str(port), "+short", "+norecurse", "+time=1", "+tries=1", name, "TXT"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return sorted(line for line in done.stdout.splitlines() if line and not line.startswith(";"))


@dataclass
class Setup:
    server: Server
    secondary: Secondary
    directory: str  # pebble's directory URL
    ca: Path  # the certificate pebble's URL is served with


@contextmanager
def setup(folder: Path) -> Iterator[Setup]:
    """dynserver, an NSD secondary copying the zone, and pebble asking dynserver."""
    nsd = require_program(*PROGRAMS["nsd"])
    nsd_host = loopback()
    nsd_port = free_port(nsd_host)
    (folder / "zone").write_text(master_file(ZONE, "ns1 IN A 192.0.2.53\n"))
    (folder / "dynserver.toml").write_text(config((nsd_host, nsd_port)))
    with dynserver(folder / "dynserver.toml", zone=ZONE) as server:
        primary = Primary(server.host, server.port, ZONE)
        with (
            secondary("nsd", nsd, folder / "nsd", nsd_host, nsd_port, primary, None) as copy,
            pebble(folder, server) as (directory, ca),
        ):
            yield Setup(server, copy, directory, ca)


def subject_names(certificate: Path) -> str:
    openssl = require_program("openssl", "openssl")
    return subprocess.run(
        [openssl, "x509", "-noout", "-ext", "subjectAltName", "-in", str(certificate)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_certbot_obtains_a_wildcard_certificate_through_dynserver(tmp_path: Path) -> None:
    certbot = require_program("certbot", "python3-certbot-dns-rfc2136")
    with setup(tmp_path) as running:
        server = running.server
        credentials = tmp_path / "rfc2136.ini"
        credentials.write_text(
            f"dns_rfc2136_server = {server.host}\ndns_rfc2136_port = {server.port}\n"
            f"dns_rfc2136_name = certbot\ndns_rfc2136_secret = {SECRET}\n"
            "dns_rfc2136_algorithm = HMAC-SHA256\n"
        )
        credentials.chmod(0o600)
        run = tmp_path / "certbot"
        command = [certbot, "certonly", "--non-interactive", "--agree-tos"]
        command += ["--register-unsafely-without-email", "--server", running.directory]
        command += ["--config-dir", str(run / "config"), "--work-dir", str(run / "work")]
        command += ["--logs-dir", str(run / "logs"), "--dns-rfc2136"]
        command += ["--dns-rfc2136-credentials", str(credentials)]
        command += ["--dns-rfc2136-propagation-seconds", str(PROPAGATION)]
        command += ["-d", ZONE, "-d", f"*.{ZONE}", "--cert-name", "dyn"]
        log = tmp_path / "certbot.out"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "REQUESTS_CA_BUNDLE": str(running.ca)},
            )
        try:
            # The wildcard and the base name share one challenge name: two values.
            served = poll(
                lambda: dig_txt(server.host, server.port),
                lambda values: len(values) == 2 or process.poll() is not None,
                "both challenge values at dynserver",
                timeout=30,
            )
            assert len(served) == 2, log.read_text(errors="replace")
            assert all(len(value.strip('"')) == 43 for value in served)
            poll(
                lambda: dig_txt(running.secondary.host, running.secondary.port),
                lambda values: values == served,
                "the challenge values at the NSD secondary",
                timeout=PROPAGATION / 2,
            )
            assert process.wait(timeout=120) == 0, log.read_text(errors="replace")
        finally:
            stop(process)
        # certbot deleted both values: gone at once, and from the secondary.
        assert dig_txt(server.host, server.port) == []
        poll(
            lambda: dig_txt(running.secondary.host, running.secondary.port),
            lambda values: values == [],
            "the challenge values gone from the secondary",
        )
        names = subject_names(run / "config" / "live" / "dyn" / "fullchain.pem")
        assert f"DNS:*.{ZONE}" in names and f"DNS:{ZONE}" in names
        log_text = server.log_text()
        assert "event=acme_challenges added=1 removed=0 actor=tsig:certbot" in log_text
        assert "type=IXFR" in log_text  # the secondary caught up incrementally


def test_lego_obtains_a_wildcard_certificate_through_dynserver(tmp_path: Path) -> None:
    """lego replaces the challenge RRset (class ANY delete, then add) and does the two
    names one after the other. Its own propagation check asks the zone's NS on port 53,
    which no test server is: it is turned off, and dynserver serves a value before it
    acknowledges the update anyway."""
    lego = require_program("lego", "lego")
    with setup(tmp_path) as running:
        server = running.server
        run = tmp_path / "lego"
        command = [lego, "--accept-tos", "--email", "acme@example.org", "--server", running.directory]
        command += ["--path", str(run), "--dns", "rfc2136", "--dns.disable-cp"]
        command += ["--dns.resolvers", f"{server.host}:{server.port}"]
        command += ["--domains", ZONE, "--domains", f"*.{ZONE}", "run"]
        environment = {
            **os.environ,
            "LEGO_CA_CERTIFICATES": str(running.ca),
            "RFC2136_NAMESERVER": f"{server.host}:{server.port}",
            "RFC2136_TSIG_KEY": "certbot",
            "RFC2136_TSIG_SECRET": SECRET,
            "RFC2136_TSIG_ALGORITHM": "hmac-sha256.",
            "RFC2136_SEQUENCE_INTERVAL": "1",
        }
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment)
        assert done.returncode == 0, done.stdout + done.stderr
        assert dig_txt(server.host, server.port) == []  # lego cleaned up
        names = subject_names(run / "certificates" / f"{ZONE}.crt")
        assert f"DNS:*.{ZONE}" in names and f"DNS:{ZONE}" in names
        log_text = server.log_text()
        # Each name's INSERT (RRset deleted, value added), then its clean-up: twice.
        assert log_text.count("event=acme_challenges added=1 removed=0 actor=tsig:certbot") == 2
        assert log_text.count("event=acme_challenges added=0 removed=1 actor=tsig:certbot") == 2
