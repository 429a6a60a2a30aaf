"""A throw-away certificate authority and broker certificate, made with the ``openssl`` command.

For tests and for a small fleet's first broker (``firmware_configs/mosquitto/make-ca.sh`` is the same
recipe as a shell script, for the field). A real fleet uses its own PKI: an offline or managed CA,
short-lived server certificates renewed automatically, and a revocation story. Nothing here is that.

Keys are ECDSA P-256: quick to generate, and supported by Mosquitto 2.0, paho-mqtt and every Pi.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.errors import HubError


class PkiError(HubError):
    """``openssl`` is missing or refused to make a key or certificate; ``detail`` is its stderr."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(f"{message}: {detail.strip()}" if detail else message)
        self.detail = detail


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """Where the files are. ``ca_key`` signs server certificates: keep it off the broker."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def find_openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise PkiError("openssl is not installed: run 'apt-get install openssl'")
    return found


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [find_openssl(), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed", detail=result.stderr)


def _san(names: Sequence[str]) -> str:
    entries = []
    for name in names:
        try:
            entries.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ",".join(entries)


def make_pki(
    directory: Path,
    *,
    server_names: Sequence[str] = ("localhost", "127.0.0.1"),
    ca_name: str = "lastmile-test-ca",
    ca_days: int = 3650,
    server_days: int = 825,
) -> Pki:
    """Write ``ca.crt``, ``ca.key``, ``server.crt`` and ``server.key`` into ``directory``.

    ``server_names`` are the host names and IP addresses the devices dial (the certificate's
    subjectAltName; clients check it, the CN is ignored). Keys are written mode 0600.
    Raises :class:`PkiError` if openssl is missing or fails, or no server name is given.
    """
    if not server_names:
        raise PkiError("a server certificate needs at least one host name or IP address")
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    old_umask = os.umask(0o077)  # keys are born private
    try:
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", str(ca_days), "-subj", f"/CN={ca_name}",
            "-keyout", pki.ca_key.name, "-out", pki.ca_cert.name,
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={server_names[0]}",
            "-keyout", pki.server_key.name, "-out", "server.csr",
            cwd=directory,
        )  # fmt: skip
        (directory / "server.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName={_san(server_names)}\n"
        )
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", pki.ca_cert.name,
            "-CAkey", pki.ca_key.name, "-CAcreateserial", "-days", str(server_days),
            "-extfile", "server.ext", "-out", pki.server_cert.name,
            cwd=directory,
        )  # fmt: skip
    finally:
        os.umask(old_umask)
        for scrap in ("server.csr", "server.ext", "ca.srl"):
            (directory / scrap).unlink(missing_ok=True)
    pki.ca_cert.chmod(0o644)
    pki.server_cert.chmod(0o644)
    return pki
