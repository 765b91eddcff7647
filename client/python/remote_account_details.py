#!/usr/bin/python3
"""Account Details, remotely, in Python: the projection of
plugins/account_details.c (same selectors, initial state and fold) run in
this process through sluice_remote.py. With --filter-id, also the
"customer events" filter of plugins/account_filters.c.

    remote_account_details.py [--url URL] [--id UUID] [--name NAME]
                              [--filter-id UUID] [--filter-name NAME]
                              [--protocol 1|2] [--quiet]
                              [--tls-ca FILE] [--tls-server-name NAME]
                              [--tls-cert FILE --tls-key FILE]

The endpoint is --url, else $SLUICE_URL. A tls+tcp:// endpoint needs
--tls-ca (else $SLUICE_TLS_CA), with --tls-cert and --tls-key for mutual
TLS ($SLUICE_TLS_CERT, $SLUICE_TLS_KEY; an encrypted key's password from
$SLUICE_TLS_KEY_PASSWORD), as the sluice CLI. Stops on SIGINT or SIGTERM;
registers again by itself when the daemon restarts. Needs Debian's
python3-msgpack and libnng1: run it with /usr/bin/python3.
"""

import argparse
import logging
import os
import signal
import sys
import threading

# The module beside this script; no __pycache__ left in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_remote as sr  # noqa: E402

DEFAULT_ID = "5b0de2a4-7c1e-4f59-9a3d-2e8c4b6f1a07"
DEFAULT_NAME = "python_account_details"
DEFAULT_FILTER_NAME = "python customer events"
# Bump when the fold changes meaning: the daemon rebuilds the read models.
VERSION = 1

INITIAL_STATE = {"account_id": "", "type": "", "customer": "", "name": "",
                 "balance": 0}

SELECTORS = [
    sr.event_source("DebitAccountOpened"),
    sr.property("CustomerRegistered", "account.id"),
    sr.partition("DebitPerformed"),
    sr.property("WithdrawalPerformed", "account_id"),
]

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def copy_str(content, path, state, key):
    v = content.get(path)
    if isinstance(v, str):
        state[key] = v


def on_event(event, key, state, call):
    """The plugin's fold: every event of a key belongs to account <key>."""
    etype = event.get("type")
    content = event.get("content") or {}
    if not state.get("account_id"):
        state["account_id"] = key
    if etype == "DebitAccountOpened":
        copy_str(content, "account_id", state, "account_id")
        state["type"] = "debit"
        copy_str(content, "name", state, "name")
    elif etype == "CustomerRegistered":
        copy_str(content, "name", state, "customer")
    elif etype in ("DebitPerformed", "WithdrawalPerformed"):
        amount = content.get("amount")
        if not is_int(amount):
            # the plugin's reason, word for word
            return sr.Failed("%s at position %d: %s" % (
                etype, event.get("position", 0),
                "content has no 'amount'" if amount is None
                else "'amount' is not an integer"))
        balance = state.get("balance", 0)
        if not is_int(balance):
            balance = 0
        balance = balance - amount if etype == "WithdrawalPerformed" \
            else balance + amount
        if not INT64_MIN <= balance <= INT64_MAX:
            return sr.Failed("%s at position %d: balance overflows"
                             % (etype, event.get("position", 0)))
        state["balance"] = balance
    return sr.Replace(state)


ACCOUNT_EVENTS = ("CustomerRegistered", "DebitAccountOpened",
                  "DebitPerformed", "WithdrawalPerformed")


def customer_events(event, call):
    """The "customer events" filter: account events under their customer."""
    etype = event.get("type")
    if etype not in ACCOUNT_EVENTS:
        return sr.Excluded()
    customer = (event.get("content") or {}).get("customer_id")
    where = "%s at position %d" % (etype, event.get("position", 0))
    if not isinstance(customer, str):
        return sr.Failed("%s: %s" % (where, "content has no 'customer_id'"
                                     if customer is None
                                     else "'customer_id' is not a string"),
                         retry=False)
    size = len(customer.encode("utf-8", "surrogateescape"))
    if size == 0 or size > 255:
        return sr.Failed("%s: 'customer_id' is %s" % (
            where, "empty" if size == 0 else "longer than 255 bytes"),
            retry=False)
    return sr.Included(customer)


def main():
    ap = argparse.ArgumentParser(
        prog="remote_account_details.py",
        description="Account Details as a remote projection of sluiced.")
    ap.add_argument("--url", default=os.environ.get("SLUICE_URL") or None,
                    help="the daemon's endpoints.api (default $SLUICE_URL)")
    ap.add_argument("--id", default=DEFAULT_ID)
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--filter-id", default=None,
                    help="also run the 'customer events' filter, this id")
    ap.add_argument("--filter-name", default=DEFAULT_FILTER_NAME)
    ap.add_argument("--protocol", type=int, default=sr.PROTOCOL,
                    choices=sr.PROTOCOLS,
                    help="remote protocol: 2 (runs of events per call, "
                    "the default) or 1 (an event per call)")
    ap.add_argument("--quiet", action="store_true")
    env = os.environ.get
    ap.add_argument("--tls-ca", default=env("SLUICE_TLS_CA") or None,
                    help="CA of the daemon's certificate (tls+tcp://)")
    ap.add_argument("--tls-server-name",
                    default=env("SLUICE_TLS_SERVER_NAME") or None)
    ap.add_argument("--tls-cert", default=env("SLUICE_TLS_CERT") or None,
                    help="client certificate, for mutual TLS")
    ap.add_argument("--tls-key", default=env("SLUICE_TLS_KEY") or None)
    args = ap.parse_args()
    if not args.url:
        ap.error("give --url or set SLUICE_URL")
    tls = None
    if args.url.startswith("tls+tcp://"):
        if not args.tls_ca:
            ap.error("%s needs --tls-ca (or SLUICE_TLS_CA)" % args.url)
        try:
            tls = sr.TLS(args.tls_ca, server_name=args.tls_server_name,
                         cert_file=args.tls_cert, key_file=args.tls_key,
                         key_password=env("SLUICE_TLS_KEY_PASSWORD"))
        except (OSError, ValueError) as e:
            ap.error("TLS: %s" % e)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="remote_account_details.py: %(levelname)s: %(message)s")

    remotes = [sr.Remote(args.url, sr.Projection(
        id=args.id, name=args.name, version=VERSION,
        initial_state=INITIAL_STATE, selectors=SELECTORS,
        handler=on_event), protocol=args.protocol, tls=tls)]
    if args.filter_id:
        remotes.append(sr.Remote(args.url, sr.Filter(
            id=args.filter_id, name=args.filter_name, version=VERSION,
            filter_kind="partitioned", handler=customer_events),
            protocol=args.protocol, tls=tls))

    def on_signal(signum, frame):
        for r in remotes:
            r.stop()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    errors = []

    def run(r):
        try:
            r.run()
        except sr.SluiceError as e:
            errors.append("%s '%s': %s" % (r.definition.kind,
                                           r.definition.name, e))
            for other in remotes:
                other.stop()

    threads = [threading.Thread(target=run, args=(r,), daemon=True)
               for r in remotes[1:]]
    for t in threads:
        t.start()
    run(remotes[0])
    for t in threads:
        t.join()
    for r in remotes:
        r.close()
    for e in errors:
        print("remote_account_details.py: %s" % e, file=sys.stderr)
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
