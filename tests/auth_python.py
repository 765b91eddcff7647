"""auth_test's Python part: client/python/sluice_remote.py sends its token
(token=, or $SLUICE_TOKEN) in API requests and registrations, and a
refusal comes back as EACCES; a registration's connection answers the
daemon's hello with its session. Usage: auth_python.py API_URL READER_TOKEN
REGISTRAR_TOKEN; exit 0 when all holds."""
import os
import sys

import sluice_remote as s

url, reader, registrar = sys.argv[1], sys.argv[2], sys.argv[3]
r = s.api_request(url, "get_one", token=reader, tenant="t1",
                  projection="account_details", key="k")
assert r["ok"] is True, r
try:
    s.api_request(url, "get_one", token=reader, tenant="t2",
                  projection="account_details", key="k")
    sys.exit("t2 was not refused")
except s.SluiceError as e:
    assert e.code == s.EACCES, e.code
    assert "op 'get_one' on tenant 't2' refused" in e.message, e.message

# no token: refused for good (a registration is not retried)
os.environ.pop("SLUICE_TOKEN", None)
f = s.Filter("c0000000-2222-4333-8444-555555555555", "py", lambda e, c: None)
try:
    s.Remote(url, f).register()
    sys.exit("a registration without a token was taken")
except s.RegistrationRefused as e:
    assert e.code == s.EACCES, e.code

# the token from the environment
os.environ["SLUICE_TOKEN"] = registrar
rem = s.Remote(url, f)
reply = rem.register()
assert reply["registration"] == "new", reply

# serving: the daemon's first call on the connection is hello, answered
# with the registration's session; then it counts as connected
import threading  # noqa: E402
import time  # noqa: E402
rem = s.Remote(url, f)
t = threading.Thread(target=rem.run, daemon=True)
t.start()
deadline = time.monotonic() + 15
while True:
    st = s.api_request(url, "status", token=registrar)
    mine = [x for x in st.get("remotes", []) if x.get("id") == f.id]
    if mine and mine[0].get("connected"):
        break
    assert time.monotonic() < deadline, mine
    time.sleep(0.05)
rem.stop()
t.join(15)
print("ok")
