"""Who may subscribe to a monitor: CurveZMQ keys (encryption and authentication, ZeroMQ's own `zmq.auth`)
and the loopback rule. The threat model and the deployment are in docs/SECURITY.md.

- The monitor holds a secret key; every subscriber holds its own secret key and the monitor's public key.
  The monitor lets in only subscribers whose public key file lies in its allow-list folder: the handshake of
  any other peer is refused before it can send a single subscription, and all traffic is encrypted.
- Keys are the standard ZeroMQ certificate files (`nero keys NAME`: NAME.key, public, to hand out;
  NAME.key_secret, secret, readable by its owner only), so a display in any language with a ZeroMQ binding
  can use them.
- Binding anything other than loopback needs an explicit allow_remote, and says so loudly without CURVE.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from pipeline.errors import UserError


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    clients: Path           # the allow-list: a folder of subscribers' public key files (*.key)


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server: bytes           # the monitor's public key


def make_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """A new key pair in `folder`: (public file, secret file); never replaces an existing one."""
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise UserError(f"{path} exists: keys are never replaced (remove it first, or choose another name)")
    folder.mkdir(parents=True, exist_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(made_secret, 0o600)
    return Path(made_public), Path(made_secret)


def _read(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    what = "secret key file" if secret else "public key file"
    if not path.is_file():
        raise UserError(f"{what} not found: {path} (make one with `nero keys NAME`)")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as error:
        raise UserError(f"{path} is not a ZeroMQ key file: {error}") from None
    if secret and secret_key is None:
        raise UserError(f"{path} holds only a public key: give the NAME.key_secret file")
    return public, secret_key


def server_keys(secret_file: Path, clients: Path) -> ServerKeys:
    """The monitor's keys and its allow-list, checked (every key file in it must read)."""
    public, secret = _read(secret_file, secret=True)
    if not clients.is_dir():
        raise UserError(f"the allow-list folder {clients} does not exist (put the subscribers' NAME.key "
                        "files in it)")
    allowed = sorted(clients.glob("*.key"))
    if not allowed:
        raise UserError(f"the allow-list folder {clients} holds no public key (*.key) file: nobody could "
                        "subscribe")
    for path in allowed:
        _read(path, secret=False)
    return ServerKeys(public, secret, clients)


def client_keys(secret_file: Path, server_public_file: Path) -> ClientKeys:
    public, secret = _read(secret_file, secret=True)
    server, _ = _read(server_public_file, secret=False)
    return ClientKeys(public, secret, server)


def secure_server(context: zmq.Context, socket: zmq.Socket, keys: ServerKeys) -> object:
    """Make `socket` (not yet bound) a CURVE server that admits only the allow-list; returns the
    authenticator thread, to be stopped when the socket closes."""
    from zmq.auth.thread import ThreadAuthenticator

    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(keys.clients))
    curve_server(socket, keys)
    return authenticator


def curve_server(socket: zmq.Socket, keys: ServerKeys) -> None:
    """Make `socket` a CURVE server with these keys; the allow-list is enforced by the authenticator that
    `secure_server` started on the socket's context (one per context: a hub's two sockets share it)."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True


def secure_client(socket: zmq.Socket, keys: ClientKeys) -> None:
    """Make `socket` (not yet connected) a CURVE client of the monitor whose public key is `keys.server`."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_serverkey = keys.server


def is_loopback(endpoint: str) -> bool:
    """Only this machine can reach the endpoint: tcp on 127.0.0.0/8, ::1 or localhost; ipc; inproc."""
    transport, _, address = endpoint.partition("://")
    if transport != "tcp":
        return transport in ("ipc", "inproc")
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False            # an interface name or a host name: assume it faces a network


def check_exposure(endpoint: str, allow_remote: bool, curve: bool) -> str | None:
    """Refuse a bind other machines can reach unless allowed; returns the warning to give when it is
    allowed without CURVE (None when there is nothing to say)."""
    if is_loopback(endpoint):
        return None
    if not allow_remote:
        raise UserError(f"{endpoint} can be reached from other machines: pass --allow-remote "
                        "(publish.allow_remote: true) to mean it, and use CURVE keys (--curve-key, "
                        "--curve-clients; docs/SECURITY.md)")
    if not curve:
        return (f"publishing on {endpoint} without CURVE: anyone who can reach this port reads every alert, "
                "unencrypted, and can send it subscriptions (docs/SECURITY.md)")
    return None
