"""TLS for `serve`: https straight from the service, for clients that send a bearer token only
to https hosts and follow only `https://` next links, where no TLS proxy stands in front.

`serve --tls-cert FILE --tls-key FILE` serves the operator's certificate chain and key;
`serve --tls-self-signed` (local use) makes one for `localhost`, `127.0.0.1`, `::1` and the
listening host, kept in the data directory (`TLS_FILE`: key and certificate, owner-only, as the
signing key is) with the certificate alone beside it (`TLS_CERTIFICATE_FILE`) for clients to
trust, and reused until it nears its end or the host is not among its names. The files are
loaded here, before the port is bound, so that a wrong file fails the start with its name
(a `TlsError`) rather than the first handshake.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from datapolicy.auth.keys import create_owner_only
from datapolicy.errors import StartupError

if TYPE_CHECKING:
    from datapolicy.settings import Settings

TLS_FILE = "tls-self-signed.pem"  # the key and the certificate; 0600
TLS_CERTIFICATE_FILE = "tls-self-signed.crt"  # the certificate alone, for clients to trust
VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)  # a certificate this close to its end is made again
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_ANY_ADDRESS = ("", "0.0.0.0", "::")


class TlsError(StartupError):
    """A certificate or key `serve` was given cannot be used; the message names the file."""


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path  # the chain, PEM (with the key too, when `key` is None)
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A server context with these files: TLS 1.2 or later, HTTP/1.1."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        try:
            context.load_cert_chain(self.certificate, self.key)
        except (OSError, ssl.SSLError) as exc:
            files = self.certificate if self.key is None else f"{self.certificate}, {self.key}"
            raise TlsError(f"{files}: not a usable TLS certificate and key ({exc})") from None
        return context


def serving_files(settings: Settings) -> TlsFiles | None:
    """The certificate and key `serve` serves https with (made now, for --tls-self-signed);
    None: plain http."""
    if settings.tls_self_signed:
        return self_signed(settings.data_dir, settings.host)
    if settings.tls_cert is not None:
        return TlsFiles(settings.tls_cert, settings.tls_key)
    return None


def self_signed(data_dir: Path, host: str) -> TlsFiles:
    """The data directory's self-signed certificate for `host` (made if there is none usable
    yet); its public half is written to `TLS_CERTIFICATE_FILE`."""
    path = data_dir / TLS_FILE
    names = _names(host)
    if not _usable(path, names):
        data_dir.mkdir(parents=True, exist_ok=True)
        replacing = path.exists()
        pem = _new_certificate(names)
        if replacing:  # expired or for other names: written anew, still owner-only
            temporary = data_dir / f".{TLS_FILE}.{uuid.uuid4().hex}"
            create_owner_only(temporary, pem)
            os.replace(temporary, path)
        else:
            create_owner_only(path, pem)  # another process may have made it first: theirs
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    public = data_dir / TLS_CERTIFICATE_FILE
    temporary = data_dir / f".{TLS_CERTIFICATE_FILE}.{uuid.uuid4().hex}"
    temporary.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    temporary.chmod(0o644)  # public: any local client may trust it
    os.replace(temporary, public)
    return TlsFiles(path)


def _names(host: str) -> tuple[str, ...]:
    return _LOCAL_NAMES if host in _ANY_ADDRESS or host in _LOCAL_NAMES else (*_LOCAL_NAMES, host)


def _usable(path: Path, names: tuple[str, ...]) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        alternatives = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    covered = {*alternatives.get_values_for_type(x509.DNSName)}
    covered.update(str(a) for a in alternatives.get_values_for_type(x509.IPAddress))
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > RENEW_BEFORE and all(name in covered for name in names)


def _new_certificate(names: tuple[str, ...]) -> bytes:
    """A P-256 key and a certificate for `names` signed by it, as one PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "datapolicy (self-signed)")])
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private + certificate.public_bytes(serialization.Encoding.PEM)
