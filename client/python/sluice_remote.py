"""Remote projections and filters for Sluice, in Python.

A process registers a projection's or a filter's definition with sluiced
and then answers the daemon's calls (docs/remote.md): remote protocol
version 2 by default, where a call carries runs of events (many keys per
call, each key's events in log order) and the handler is still called once
per event; version 1 (an event per call) with Remote(..., protocol=1). The daemon keeps the log, the checkpoints, retries and
read models; this module only speaks the protocol. Written from
docs/remote.md and docs/protocol.md alone, over Debian's python3-msgpack
and libnng.so.1 (through ctypes); no other dependency.

    import sluice_remote as sr

    def on_event(event, key, state, call):
        state["balance"] += event["content"]["amount"]
        return sr.Replace(state)        # or sr.Delete(), sr.Failed(...)

    proj = sr.Projection(
        id="c5a0e7d2-...", name="balances",
        selectors=[sr.property("DebitPerformed", "account_id")],
        initial_state={"balance": 0}, handler=on_event)
    with sr.Remote("ipc://data/api.ipc", proj) as remote:
        remote.run()        # until remote.stop(), e.g. from a SIGTERM handler

On a tls+tcp:// endpoint (docs/security.md), pass tls=sr.TLS(ca_file=...,
cert_file=..., key_file=...) to Remote (and api_request): the CA of the
daemon's certificate, and for mutual TLS the client's certificate and key.

A filter's handler is handler(event, call) and returns sr.Included(partition)
(partition only for partitioned and public filters), sr.Excluded() or
sr.Failed(...). A handler that raises fails the call (retried later).

Remote.run() registers (again after a daemon restart, or when told a call
of another session), dials the registration's URL, answers pings, and goes
on until stop() is called (from a signal handler or another thread).
Run one Remote per definition, each in its own thread if need be.
"""

import copy
import ctypes
import logging
import os
import random
import re
import threading
import time

import msgpack

__all__ = [
    "PROTOCOL", "SluiceError", "RegistrationRefused", "NngError",
    "Selector", "event_source", "partition", "static", "occurred", "Projection", "Filter", "Call", "Replace", "Delete",
    "Included", "Excluded", "Failed", "Remote", "api_request", "TLS",
]

PROTOCOL = 2  # the remote protocol version this module speaks by default
PROTOCOLS = (1, 2)  # and those it can speak
API_VERSION = 1  # protocol.md's envelope version

# protocol.md, "Error codes"
ERROR_NAMES = {
    1: "EINVAL", 2: "ENOTFOUND", 3: "EREVISION", 4: "ETOOBIG", 5: "EPROTO",
    6: "EPLUGIN", 7: "ENOMEM", 8: "ESTORAGE", 9: "ENET", 10: "ETIMEDOUT",
    11: "ECONFIG", 12: "EVERSION", 13: "EEXIST", 14: "ECLOSED",
    15: "EFULL", 16: "EUNKNOWNOP", 17: "EINTERNAL", 18: "EOWNED",
    19: "EBUSY", 20: "EACCES", 21: "EUNAVAILABLE",
}
EINVAL, ETOOBIG, EPROTO, ENET, ETIMEDOUT = 1, 4, 5, 9, 10
EVERSION, EEXIST, ECLOSED, EUNKNOWNOP, EACCES = 12, 13, 14, 16, 20
EUNAVAILABLE = 21

# Refusals of a registration that no retry can change (docs/remote.md,
# "Errors" and "The daemon restarted"); an older daemon without the op
# (EUNKNOWNOP) will not learn it either.
# EACCES: the token may not register (or take over) this; docs/security.md.
FINAL_CODES = frozenset((EINVAL, EPROTO, EVERSION, ETOOBIG, EUNKNOWNOP,
                         EACCES))

log = logging.getLogger("sluice_remote")


class SluiceError(Exception):
    """An error reply of the daemon (code, name, message), or a transport
    failure (code ENET / ETIMEDOUT)."""

    def __init__(self, code, message, reply=None):
        self.code = code
        self.name = ERROR_NAMES.get(code, "E%d" % code)
        self.message = message
        self.reply = reply or {}
        super().__init__("%s: %s" % (self.name, message))


class RegistrationRefused(SluiceError):
    """The daemon refused the definition for good (EINVAL, EPROTO,
    EVERSION, ETOOBIG, EUNKNOWNOP): fix the definition or the daemon."""


class NngError(Exception):
    def __init__(self, what, rc):
        self.rc = rc
        super().__init__("%s: %s" % (what, _nng().strerror(rc)))


# --------------------------------------------------------------- NNG, ctypes

_NNG_FLAG_ALLOC = 1
_NNG_FLAG_NONBLOCK = 2
_NNG_ETIMEDOUT = 5
_NNG_ECLOSED = 7
_NNG_DURATION_INFINITE = -1


class _Socket(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32)]


class _Dialer(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32)]


_NNG_TLS_MODE_CLIENT = 0
_NNG_TLS_AUTH_MODE_REQUIRED = 2
_NNG_OPT_TLS_CONFIG = b"tls-config"


class TLS:
    """TLS for a tls+tcp:// endpoint: ca_file, the PEM file of the CA that
    signed the daemon's certificate (required); server_name, the name that
    certificate must carry (default: the URL's host; mbedtls 2.28 matches
    DNS names and the CN, not IP address entries); for mutual TLS,
    cert_file and key_file (PEM) and key_password if the key is encrypted.
    The files are read here, so a missing one is an error at once."""

    def __init__(self, ca_file, server_name=None, cert_file=None,
                 key_file=None, key_password=None):
        if not ca_file:
            raise ValueError("TLS needs ca_file, the CA of the daemon's "
                             "certificate")
        if (cert_file is None) != (key_file is None):
            raise ValueError("TLS: cert_file and key_file go together")
        self.server_name = server_name
        self.key_password = key_password
        self.ca = self._pem(ca_file)
        self.cert = self._pem(cert_file) if cert_file else None
        self.key = self._pem(key_file) if key_file else None

    @staticmethod
    def _pem(path):
        with open(path, "rb") as f:
            data = f.read()
        if b"-----BEGIN " not in data:
            raise ValueError("%s: not a PEM file" % path)
        return data

    def config(self, n, url):
        """A new nng_tls_config for dialing url (the caller frees it)."""
        cfg = ctypes.c_void_p()
        lib = n.lib
        rc = lib.nng_tls_config_alloc(ctypes.byref(cfg),
                                      _NNG_TLS_MODE_CLIENT)
        if rc != 0:
            raise NngError("TLS configuration", rc)
        host = re.match(r"^tls\+tcp://(\[([^\]]*)\]|[^:/]*)", url)
        name = self.server_name or (host.group(2) or host.group(1)
                                    if host else "")
        for what, rc in (
            ("server name", lib.nng_tls_config_server_name(
                cfg, name.encode())),
            ("auth mode", lib.nng_tls_config_auth_mode(
                cfg, _NNG_TLS_AUTH_MODE_REQUIRED)),
            ("CA", lib.nng_tls_config_ca_chain(cfg, self.ca, None)),
            ("certificate and key", 0 if self.cert is None else
             lib.nng_tls_config_own_cert(
                 cfg, self.cert, self.key,
                 self.key_password.encode() if self.key_password
                 else None)),
        ):
            if rc != 0:
                lib.nng_tls_config_free(cfg)
                raise NngError("TLS %s" % what, rc)
        return cfg


class _Lib:
    """The few libnng calls this module needs."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        S, D = _Socket, _Dialer
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        for name, args in (
            ("nng_req0_open", [ctypes.POINTER(S)]),
            ("nng_rep0_open", [ctypes.POINTER(S)]),
            ("nng_close", [S]),
            ("nng_dial", [S, cp, ctypes.POINTER(D), ctypes.c_int]),
            ("nng_dialer_close", [D]),
            ("nng_send", [S, vp, sz, ctypes.c_int]),
            ("nng_recv", [S, vp, ctypes.POINTER(sz), ctypes.c_int]),
            ("nng_socket_set_ms", [S, cp, ctypes.c_int32]),
            ("nng_socket_set_size", [S, cp, sz]),
            ("nng_dialer_create", [ctypes.POINTER(D), S, cp]),
            ("nng_dialer_set_ptr", [D, cp, vp]),
            ("nng_dialer_start", [D, ctypes.c_int]),
            ("nng_tls_config_alloc", [ctypes.POINTER(vp), ctypes.c_int]),
            ("nng_tls_config_server_name", [vp, cp]),
            ("nng_tls_config_auth_mode", [vp, ctypes.c_int]),
            ("nng_tls_config_ca_chain", [vp, cp, cp]),
            ("nng_tls_config_own_cert", [vp, cp, cp, cp]),
        ):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, ctypes.c_int
        lib.nng_free.argtypes, lib.nng_free.restype = [vp, sz], None
        lib.nng_tls_config_free.argtypes = [vp]
        lib.nng_tls_config_free.restype = None
        lib.nng_strerror.argtypes = [ctypes.c_int]
        lib.nng_strerror.restype = cp
        self.lib = lib

    def strerror(self, rc):
        return self.lib.nng_strerror(rc).decode("utf-8", "replace")


_lib = None
_lib_lock = threading.Lock()


def _nng():
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _Lib(os.environ.get("SLUICE_LIBNNG", "libnng.so.1"))
        return _lib


class _Sock:
    """An NNG socket: req0 (the API) or rep0 (a registration's calls)."""

    def __init__(self, proto):
        self.n = _nng()
        self.s = _Socket()
        opener = {"req0": self.n.lib.nng_req0_open,
                  "rep0": self.n.lib.nng_rep0_open}[proto]
        rc = opener(ctypes.byref(self.s))
        if rc != 0:
            raise NngError("nng_%s_open" % proto, rc)
        self.closed = False
        self.dialer = None
        # Messages carry events of up to 1 MiB and read models: no limit.
        self.set_size("recv-size-max", 0)

    def set_ms(self, opt, ms):
        rc = self.n.lib.nng_socket_set_ms(self.s, opt.encode(), int(ms))
        if rc != 0:
            raise NngError("option %s" % opt, rc)

    def set_size(self, opt, n):
        rc = self.n.lib.nng_socket_set_size(self.s, opt.encode(), n)
        if rc != 0:
            raise NngError("option %s" % opt, rc)

    def dial(self, url, tls=None):
        """Dial in the background: the dialer connects, and reconnects,
        by itself; a daemon that is not there yet is no error. A
        tls+tcp:// url needs tls (a TLS)."""
        lib = self.n.lib
        d = _Dialer()
        if not url.startswith("tls+tcp://"):
            rc = lib.nng_dial(self.s, url.encode(), ctypes.byref(d),
                              _NNG_FLAG_NONBLOCK)
            if rc != 0:
                raise NngError("dial %s" % url, rc)
            self.dialer = d
            return
        if tls is None:
            raise SluiceError(EINVAL, "%s needs TLS options (tls=TLS("
                              "ca_file=...))" % url)
        cfg = tls.config(self.n, url)
        try:
            rc = lib.nng_dialer_create(ctypes.byref(d), self.s, url.encode())
            if rc != 0:
                raise NngError("dial %s" % url, rc)
            # the dialer holds the configuration from here on
            rc = lib.nng_dialer_set_ptr(d, _NNG_OPT_TLS_CONFIG, cfg)
            if rc == 0:
                rc = lib.nng_dialer_start(d, _NNG_FLAG_NONBLOCK)
            if rc != 0:
                lib.nng_dialer_close(d)
                raise NngError("dial %s" % url, rc)
        finally:
            lib.nng_tls_config_free(cfg)
        self.dialer = d

    def send(self, data):
        rc = self.n.lib.nng_send(self.s, data, len(data), 0)
        if rc != 0:
            raise NngError("send", rc)

    def recv(self):
        """The next message, or None when the receive timeout passed."""
        buf = ctypes.c_void_p()
        size = ctypes.c_size_t()
        rc = self.n.lib.nng_recv(self.s, ctypes.byref(buf),
                                 ctypes.byref(size), _NNG_FLAG_ALLOC)
        if rc == _NNG_ETIMEDOUT:
            return None
        if rc != 0:
            raise NngError("recv", rc)
        try:
            return ctypes.string_at(buf, size.value)
        finally:
            self.n.lib.nng_free(buf, size.value)

    def close(self):
        """Close the dialer first: that drops the connection, so the
        daemon stops sending; then the socket, with a bounded wait."""
        if self.closed:
            return
        self.closed = True
        if self.dialer is not None:
            self.n.lib.nng_dialer_close(self.dialer)
        _bounded_close(self.n, self.s)


# NNG 1.5.2 (Debian 12's libnng1) can hang for good in nng_close() of a
# socket whose peer is still sending (nanomsg/nng#1543, #1813). The close
# runs on a helper thread; one that does not finish in time is left to the
# process exit, and once that happened later closes only wait briefly.
_close_wedged = False


def _bounded_close(n, sock):
    global _close_wedged
    done = threading.Event()

    def closer():
        n.lib.nng_close(sock)
        done.set()

    threading.Thread(target=closer, name="nng-close", daemon=True).start()
    if not done.wait(0.1 if _close_wedged else 2.0):
        _close_wedged = True
        log.warning("an NNG socket did not close in time (a known NNG 1.5 "
                    "bug with busy peers); leaving it to the process exit")


# ------------------------------------------------------------------ msgpack

def _pack(obj):
    # surrogateescape: strings that were not UTF-8 on the way in (the
    # daemon does not check) go back out as the same bytes.
    return msgpack.packb(obj, use_bin_type=True,
                         unicode_errors="surrogateescape")


def _unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           unicode_errors="surrogateescape")


# ------------------------------------------------------------- the API socket

class _Api:
    """A req0 socket to endpoints.api: one request at a time."""

    def __init__(self, url, timeout_ms, token=None, tls=None):
        self.token = token  # sent in every request (docs/security.md)
        self.sock = _Sock("req0")
        # Never resend by timer: protocol.md, "Retries".
        self.sock.set_ms("req:resend-time", _NNG_DURATION_INFINITE)
        self.sock.set_ms("send-timeout", timeout_ms)
        self.sock.set_ms("recv-timeout", timeout_ms)
        self.sock.set_ms("reconnect-time-min", 50)
        self.sock.set_ms("reconnect-time-max", 1000)
        try:
            self.sock.dial(url, tls)
        except Exception:
            self.sock.close()
            raise

    def request(self, op, **fields):
        """Send {v, op, fields...}; the ok reply's map, or SluiceError."""
        req = {"v": API_VERSION, "op": op}
        if self.token is not None:
            req["token"] = self.token
        req.update({k: v for k, v in fields.items() if v is not None})
        try:
            self.sock.send(_pack(req))
            data = self.sock.recv()
        except NngError as e:
            raise SluiceError(ENET, "%s: %s" % (op, e)) from None
        if data is None:
            raise SluiceError(ETIMEDOUT, "%s: no reply in time" % op)
        try:
            reply = _unpack(data)
        except Exception as e:  # noqa: BLE001 - any decoding error
            raise SluiceError(EPROTO, "%s: reply is not msgpack: %s"
                              % (op, e)) from None
        if not isinstance(reply, dict):
            raise SluiceError(EPROTO, "%s: reply is not a map" % op)
        if reply.get("ok") is not True:
            code = reply.get("code")
            raise SluiceError(code if isinstance(code, int) else EPROTO,
                              str(reply.get("message", "")), reply)
        return reply

    def close(self):
        self.sock.close()


def api_request(url, op, timeout_ms=5000, token=None, tls=None, **fields):
    """One request of the ordinary API (protocol.md), e.g.
    api_request(url, "get_one", tenant="demo", projection="x", key="k").
    token: for a daemon with an auth: section (default $SLUICE_TOKEN);
    tls: a TLS, for a tls+tcp:// url.
    Returns the ok reply's map; raises SluiceError on an error reply."""
    api = _Api(url, timeout_ms, _token(token), tls)
    try:
        return api.request(op, **fields)
    finally:
        api.close()


# -------------------------------------------------------------- definitions

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_KEYS = ("event_source", "partition", "property", "static", "occurred")


class Selector:
    """Which event type a projection handles and how it finds the read
    model key: key is one of event_source, partition, property (arg: a
    dotted content path), static (arg: the key), occurred (arg: a strftime
    pattern of the event's UTC occurred time)."""

    def __init__(self, type, key, arg=None):
        if key not in _KEYS:
            raise ValueError("unknown key selector %r" % (key,))
        if key in ("property", "static", "occurred") and not arg:
            raise ValueError("key selector %r needs an arg" % key)
        self.type, self.key, self.arg = type, key, arg

    def wire(self):
        m = {"type": self.type, "key": self.key}
        if self.arg is not None:
            m["arg"] = self.arg
        return m

    def __repr__(self):
        return "Selector(%r, %r, %r)" % (self.type, self.key, self.arg)


def event_source(type):
    return Selector(type, "event_source")


def partition(type):
    return Selector(type, "partition")


# Named after the key selector; it shadows the builtin in this module (not
# used here) and is left out of __all__ so that "import *" does not.
def property(type, path):  # noqa: A001
    return Selector(type, "property", path)


def static(type, key):
    return Selector(type, "static", key)


def occurred(type, pattern):
    return Selector(type, "occurred", pattern)


def _check_uuid(what, s):
    if not isinstance(s, str) or not _UUID.match(s):
        raise ValueError("%s %r is not a UUID (8-4-4-4-12 hex)" % (what, s))


class Projection:
    """A projection's definition and its handler:
    handler(event, key, state, call) -> Replace(state) | Delete() | Failed().
    A dict returned is taken as Replace(dict). state is the key's current
    state (or the initial state), a fresh dict the handler may change."""

    kind = "projection"

    def __init__(self, id, name, selectors, handler, initial_state=None,
                 scope=None, version=1):
        _check_uuid("id", id)
        if scope is not None:
            _check_uuid("scope", scope)
        if not selectors:
            raise ValueError("a projection needs at least one selector")
        self.id, self.name, self.scope, self.version = id, name, scope, version
        self.selectors = [s if isinstance(s, Selector) else Selector(*s)
                          for s in selectors]
        self.initial_state = dict(initial_state or {})
        self.handler = handler

    def register_fields(self):
        return {"kind": "projection", "id": self.id, "scope": self.scope,
                "name": self.name, "version": self.version,
                "initial_state": self.initial_state,
                "selectors": [s.wire() for s in self.selectors]}

    def answer(self, call):
        out = self.handler(call.event, call.key, call.state, call)
        if isinstance(out, dict):
            out = Replace(out)
        if not isinstance(out, (Replace, Delete, Failed)):
            return Failed("the projection handler returned %r" % (out,),
                          retry=False)
        return out


class Filter:
    """A filter's definition and its handler:
    handler(event, call) -> Included(partition) | Excluded() | Failed().
    filter_kind: unpartitioned, partitioned (Included needs a partition)
    or public (sees only public events; Included needs a partition)."""

    kind = "filter"

    def __init__(self, id, name, handler, filter_kind="unpartitioned",
                 scope=None, version=1):
        _check_uuid("id", id)
        if scope is not None:
            _check_uuid("scope", scope)
        if filter_kind not in ("unpartitioned", "partitioned", "public"):
            raise ValueError("unknown filter kind %r" % (filter_kind,))
        self.id, self.name, self.scope, self.version = id, name, scope, version
        self.filter_kind = filter_kind
        self.handler = handler

    def register_fields(self):
        return {"kind": "filter", "id": self.id, "scope": self.scope,
                "name": self.name, "version": self.version,
                "filter_kind": self.filter_kind}

    def answer(self, call):
        out = self.handler(call.event, call)
        if out is True:
            out = Included()
        elif out is False:
            out = Excluded()
        if not isinstance(out, (Included, Excluded, Failed)):
            return Failed("the filter handler returned %r" % (out,),
                          retry=False)
        return out


class Call:
    """One call of the daemon: id (the call id), tenant, event (the
    committed event map of protocol.md), key and state (projections),
    attempt (failed attempts on this event so far) and reason (the last
    failure's)."""

    __slots__ = ("id", "op", "tenant", "event", "key", "state", "attempt",
                 "reason")

    def __init__(self, m):
        self._set(m.get("call"), m.get("op"), m.get("tenant"),
                  m.get("event"), m.get("key"), m.get("state"),
                  m.get("retry"))

    @classmethod
    def of(cls, call_id, op, tenant, event, key, state, retry):
        """One event of a protocol 2 call."""
        c = cls.__new__(cls)
        c._set(call_id, op, tenant, event, key, state, retry)
        return c

    def _set(self, call_id, op, tenant, event, key, state, retry):
        retry = retry if isinstance(retry, dict) else {}
        self.id = call_id
        self.op = op
        self.tenant = tenant
        self.event = event if isinstance(event, dict) else {}
        self.key = key
        self.state = state if isinstance(state, dict) else {}
        self.attempt = retry.get("attempt", 0)
        self.reason = retry.get("reason", "")


# ------------------------------------------------------------------ outcomes

class Replace:
    """Store state as the key's read model."""
    __slots__ = ("state",)

    def __init__(self, state):
        self.state = state

    def wire(self):
        if not isinstance(self.state, dict):
            return Failed("Replace needs a dict, got %s"
                          % type(self.state).__name__, retry=False).wire()
        return {"outcome": "replace", "state": self.state}


class Delete:
    """Delete the key's read model (it reads as the initial state again)."""
    __slots__ = ()

    def wire(self):
        return {"outcome": "delete"}


class Included:
    """The event is in the filter's stream, in partition (1..255 bytes;
    partitioned and public filters only)."""
    __slots__ = ("partition",)

    def __init__(self, partition=None):
        self.partition = partition

    def wire(self):
        m = {"outcome": "included"}
        if self.partition is not None:
            m["partition"] = self.partition
        return m


class Excluded:
    __slots__ = ()

    def wire(self):
        return {"outcome": "excluded"}


class Failed:
    """The handler failed: retry=False waits for an operator's retry or
    reset; retry_after_ms=0 lets the daemon pick its growing delay."""
    __slots__ = ("reason", "retry", "retry_after_ms")

    def __init__(self, reason, retry=True, retry_after_ms=0):
        self.reason = str(reason)
        self.retry = bool(retry)
        self.retry_after_ms = max(0, int(retry_after_ms))

    def wire(self):
        return {"outcome": "failed", "reason": self.reason,
                "retry": self.retry, "retry_after_ms": self.retry_after_ms}


# ------------------------------------------------------------------- runner

def _dial_url(url, api_url):
    """A tcp (or tls+tcp) wildcard URL means "the daemon's host, port P"."""
    m = re.match(r"^((?:tls\+)?tcp)://(0\.0\.0\.0|\[::\]):(\d+)$", url)
    if not m:
        return url
    h = re.match(r"^(?:tls\+)?tcp[46]?://(\[[^\]]*\]|[^:/]*):", api_url)
    host = h.group(1) if h else ""
    if host in ("", "0.0.0.0", "[::]", "*"):
        host = "127.0.0.1" if m.group(2) == "0.0.0.0" else "[::1]"
    return "%s://%s:%s" % (m.group(1), host, m.group(3))


def _token(token):
    """The token given, else $SLUICE_TOKEN, else None."""
    if token is not None:
        return token
    return os.environ.get("SLUICE_TOKEN") or None


class Remote:
    """One registration of one definition (Projection or Filter) with the
    daemon at api_url, and the loop that answers its calls.

    api_timeout_ms bounds each register request; retry_delay_ms is the wait
    before registering again after a retryable refusal (EEXIST of a client
    still seen connected, ECLOSED) or a daemon that does not answer.
    """

    def __init__(self, api_url, definition, api_timeout_ms=5000,
                 retry_delay_ms=500, protocol=PROTOCOL, token=None,
                 tls=None):
        if protocol not in PROTOCOLS:
            raise ValueError("remote protocol %r: this module speaks %s"
                             % (protocol, PROTOCOLS))
        self.protocol = protocol
        self.api_url = api_url
        self.token = _token(token)  # docs/security.md
        self.tls = tls  # a TLS, for tls+tcp:// endpoints
        self.definition = definition
        self.api_timeout_ms = api_timeout_ms
        self.retry_delay_ms = retry_delay_ms
        self.registration = None  # the last register reply
        self.registrations = 0  # register replies taken
        self.calls = 0  # calls answered (pings not counted)
        self.pings = 0
        self._stopping = False  # a plain flag: set from signal handlers
        self._api = None
        self._conn = None  # the rep0 socket of the registration
        self._last_heard = 0.0

    # -- registration

    def register(self):
        """Send one register request. Returns the reply's map (url,
        session, window, keepalive_ms, timeout_ms, registration,
        definition). Raises RegistrationRefused for a final refusal,
        SluiceError for one worth retrying."""
        if self._api is None:
            self._api = _Api(self.api_url, self.api_timeout_ms, self.token,
                             self.tls)
        fields = self.definition.register_fields()
        try:
            reply = self._api.request("register", protocol=self.protocol,
                                      **fields)
        except SluiceError as e:
            if e.code in FINAL_CODES:
                raise RegistrationRefused(e.code, e.message,
                                          e.reply) from None
            if e.code in (ENET, ETIMEDOUT):
                # The req0 socket may still hold the request: start over.
                self._api.close()
                self._api = None
            raise
        self.registration = reply
        self.registrations += 1
        return reply

    def _connect(self, reply):
        conn = _Sock("rep0")
        try:
            keepalive = int(reply.get("keepalive_ms", 1000))
            # Short receive timeouts: stop() and the silence check need
            # the loop to come round often.
            conn.set_ms("recv-timeout", max(10, min(250, keepalive)))
            conn.set_ms("send-timeout", int(reply.get("timeout_ms", 5000)))
            conn.set_ms("reconnect-time-min", 20)
            conn.set_ms("reconnect-time-max", 500)
            conn.dial(_dial_url(reply["url"], self.api_url), self.tls)
        except Exception:
            conn.close()
            raise
        self._conn = conn
        self._last_heard = time.monotonic()

    def _disconnect(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _register_until_done(self):
        """Register, retrying what may change, until registered or
        stopped. Returns False when stopped."""
        while not self._stopping:
            try:
                reply = self.register()
            except RegistrationRefused:
                raise
            except (SluiceError, NngError) as e:
                log.info("%s '%s': registration not taken (%s); "
                         "again in %d ms", self.definition.kind,
                         self.definition.name, e, self.retry_delay_ms)
                # a little jitter so restarted clients do not march in step
                delay = self.retry_delay_ms * (0.75 + random.random() / 2)
                self._sleep(delay / 1000.0)
                continue
            log.info("%s '%s' (%s) registered (%s), calls on %s",
                     self.definition.kind, self.definition.name,
                     self.definition.id, reply.get("registration"),
                     reply.get("url"))
            self._connect(reply)
            return True
        return False

    # -- calls

    def _answer(self, m, data=None):
        """The answer map to the call m (a decoded map; data: its bytes,
        to fold a run again after a failure)."""
        call_id = m.get("call")
        op = m.get("op")
        if op == "ping":
            self.pings += 1
            return {"call": call_id, "outcome": "pong"}
        want = "project" if self.definition.kind == "projection" else "filter"
        if op != want:
            return {"call": call_id, **Failed(
                "this client answers '%s' calls, not '%s'" % (want, op),
                retry=False).wire()}
        if self.protocol >= 2:
            if want == "filter":
                return self._answer_events(m)
            return self._answer_runs(m, data)
        return {"call": call_id, **self._handle(Call(m)).wire()}

    def _handle(self, call):
        """The handler's outcome for one event (a raise is a failure)."""
        self.calls += 1
        try:
            return self.definition.answer(call)
        except Exception as e:  # noqa: BLE001 - a handler's failure
            log.debug("handler raised", exc_info=True)
            return Failed("%s: %s" % (type(e).__name__, e))

    def _answer_events(self, m):
        """Protocol 2, a filter: one outcome per event."""
        events = m.get("events") or []
        retries = m.get("retries") or []
        outcomes = []
        for i, ev in enumerate(events):
            retry = retries[i] if i < len(retries) else None
            call = Call.of(m.get("call"), "filter", m.get("tenant"), ev,
                           None, None, retry)
            outcomes.append(self._handle(call).wire())
        return {"call": m.get("call"), "outcomes": outcomes}

    def _fold(self, m, run, upto):
        """Fold events [0, upto) of a run: each gets the state the one
        before left (a fresh initial state after a delete), up to the first
        failure. Returns (applied, state or None when deleted, Failed or
        None)."""
        state = run.get("state")
        state = state if isinstance(state, dict) else {}
        events = run.get("events") or []
        applied, deleted = 0, False
        for j, ev in enumerate(events[:upto]):
            call = Call.of(m.get("call"), "project", m.get("tenant"), ev,
                           run.get("key"), state,
                           run.get("retry") if j == 0 else None)
            out = self._handle(call)
            if isinstance(out, Replace) and isinstance(out.state, dict):
                applied, deleted, state = applied + 1, False, out.state
            elif isinstance(out, Delete):
                applied, deleted = applied + 1, True
                state = copy.deepcopy(self.definition.initial_state)
            elif isinstance(out, Replace):
                return applied, (None if deleted else state), Failed(
                    "Replace needs a dict, got %s"
                    % type(out.state).__name__, retry=False)
            else:
                return applied, (None if deleted else state), out
        return applied, (None if deleted else state), None

    def _answer_runs(self, m, data=None):
        """Protocol 2, a projection: each run folded (_fold) and answered
        with how many events took effect, the state after them (or that
        the key is deleted) and the first failure. A handler edits the
        state it gets, so a failing one may have spoilt the state before
        it: the events before a failure are folded again from the call's
        bytes (handlers compute their answer and nothing else)."""
        answers = []
        for i, run in enumerate(m.get("runs") or []):
            applied, state, failed = self._fold(m, run, len(
                run.get("events") or []))
            if failed is not None and applied > 0 and data is not None:
                fresh = (_unpack(data).get("runs") or [])[i]
                applied2, state, failed2 = self._fold(m, fresh, applied)
                if failed2 is not None:
                    applied, failed = applied2, failed2
            a = {"applied": applied}
            if applied > 0:
                if state is None:
                    a["deleted"] = True
                else:
                    a["state"] = state
            if failed is not None:
                f = failed.wire()
                f.pop("outcome", None)
                a["failed"] = f
            answers.append(a)
        return {"call": m.get("call"), "runs": answers}

    def _serve_one(self):
        """Take one call (or a receive timeout). Returns False when the
        registration must be made again."""
        reply = self.registration
        try:
            data = self._conn.recv()
        except NngError as e:
            log.warning("calls socket: %s; registering again", e)
            return False
        now = time.monotonic()
        if data is None:
            silent = now - self._last_heard
            if silent * 1000.0 > 3 * int(reply.get("keepalive_ms", 1000)):
                log.info("%s '%s': no call or ping for %.1f s; the daemon "
                         "may have restarted: registering again",
                         self.definition.kind, self.definition.name, silent)
                return False
            return True
        self._last_heard = now
        try:
            m = _unpack(data)
        except Exception as e:  # noqa: BLE001
            log.warning("a call that is not msgpack (%s): not answered", e)
            return True
        if not isinstance(m, dict):
            log.warning("a call that is not a map: not answered")
            return True
        if m.get("op") == "hello":
            # a daemon with auth: asks a new connection to prove that it
            # holds the registration (its hello carries no session)
            ans = {"call": m.get("call"), "outcome": "hello",
                   "session": reply.get("session")}
            try:
                self._conn.send(_pack(ans))
            except NngError as e:
                log.warning("answer to hello not sent: %s", e)
            return True
        if m.get("session") != reply.get("session"):
            log.info("%s '%s': a call of session %r, not ours (%r): "
                     "registering again", self.definition.kind,
                     self.definition.name, m.get("session"),
                     reply.get("session"))
            return False
        ans = self._answer(m, data)
        try:
            self._conn.send(_pack(ans))
        except NngError as e:
            log.warning("answer to call %r not sent: %s", m.get("call"), e)
        return True

    # -- the loop

    def _sleep(self, seconds):
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def run(self):
        """Register and answer calls until stop(). Raises
        RegistrationRefused when the daemon refuses the definition for
        good."""
        try:
            while not self._stopping:
                if self._conn is None:
                    if not self._register_until_done():
                        break
                if not self._serve_one():
                    self._disconnect()
        finally:
            self._disconnect()

    def stop(self):
        """Make run() return (within a quarter of a second). Safe from a
        signal handler and from other threads."""
        self._stopping = True

    def close(self):
        self.stop()
        self._disconnect()
        if self._api is not None:
            self._api.close()
            self._api = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
