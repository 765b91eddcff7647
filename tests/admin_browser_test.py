#!/usr/bin/env python3
"""The admin page in a real headless browser (issue 19 item 5).

Starts sluiced with endpoints.metrics and endpoints.admin on one HTTP
listener (a free port), commits events with the CLI, and drives Debian's
chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: no
extra Python module): the page loads and shows the processors and plugins;
a committed event appears in the live tail; the pause button pauses the
projection (status through the CLI says so) and resume resumes it; the
read-model browser shows a state. Unknown paths are 404, and the daemon
serves on after a malformed WebSocket frame on the API's socket. Then the
same page under auth: every request is refused (EACCES) until a token is
typed into it, and with an operator's token the pause button works.

    usage: admin_browser_test.py BUILD_DIR SOURCE_DIR
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

build, source = sys.argv[1], sys.argv[2]
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if chromium is None:
    print("admin_browser_test: skipped: no chromium on this machine "
          "(scripts/setup.sh installs Debian's chromium)")
    sys.exit(0)

tmp = tempfile.mkdtemp(prefix="sl_admin.")
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def fail(msg):
    log = os.path.join(tmp, "sluiced.log")
    if os.path.exists(log):
        sys.stderr.write(open(log).read()[-4000:])
    sys.stderr.write("FAIL: %s\n" % msg)
    cleanup()
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


port = free_port()
api = "ipc://%s/api.ipc" % tmp
cfg = os.path.join(tmp, "resources.yaml")
with open(cfg, "w") as f:
    f.write("""data_dir: data
plugin_dir: %s/plugins
insecure: true  # the admin page serves the API on tcp, without auth:
endpoints:
  api: %s
  pub: ipc://%s/pub.ipc
  metrics: http://127.0.0.1:%d/metrics
  admin: http://127.0.0.1:%d/admin
event_store:
  sync: false
tenants:
  - id: demo
""" % (build, api, tmp, port, port))
daemon = subprocess.Popen([os.path.join(build, "sluiced"), "-c", cfg],
                          stderr=open(os.path.join(tmp, "sluiced.log"), "w"))
procs.append(daemon)


def sluice(*args):
    r = subprocess.run([os.path.join(build, "sluice"), "--url", api] +
                       list(args), capture_output=True, text=True)
    if r.returncode != 0:
        fail("sluice %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


for _ in range(100):
    if subprocess.run([os.path.join(build, "sluice"), "--url", api,
                       "status"], capture_output=True).returncode == 0:
        break
    time.sleep(0.1)
else:
    fail("sluiced did not start")

sluice("commit", "--tenant", "demo", "--stream", "acc-1", "--type",
       "DebitAccountOpened",
       '{"account_id":"acc-1","customer_id":"c-1","name":"Everyday"}')

base = "http://127.0.0.1:%d" % port
try:
    urllib.request.urlopen(base + "/admin/nope.html")
    fail("an unknown path was served")
except urllib.error.HTTPError as e:
    if e.code != 404:
        fail("unknown path: %d, not 404" % e.code)
page = urllib.request.urlopen(base + "/admin/").read().decode()
if "<title>Sluice admin</title>" not in page:
    fail("no admin page at /admin/")

# A malformed WebSocket frame on the API's socket closes that connection
# only: the handshake, then a frame with reserved bits and a bad opcode.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /admin/api HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
          b"Upgrade: websocket\r\n" % port +
          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\n"
          b"Sec-WebSocket-Protocol: rep.sp.nanomsg.org\r\n\r\n")
head = s.recv(4096)
if b" 101 " not in head.split(b"\r\n")[0]:
    fail("no WebSocket upgrade on /admin/api: %r" % head[:200])
s.sendall(b"\x7f\xff" + b"\x00" * 64)
s.settimeout(5)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
s.close()

# ---- the browser, over the DevTools protocol on fds 3 / 4 ----
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()


def child_fds():
    os.dup2(to_chrome_r, 3)
    os.dup2(from_chrome_w, 4)


chrome = subprocess.Popen(
    [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
     "--disable-dev-shm-usage", "--no-first-run",
     "--user-data-dir=" + os.path.join(tmp, "chrome"),
     "--remote-debugging-pipe", "about:blank"],
    preexec_fn=child_fds, pass_fds=(), close_fds=False,
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
procs.append(chrome)
os.close(to_chrome_r)
os.close(from_chrome_w)
buf = b""
next_id = [0]


def cdp(method, params=None, session=None, timeout=20):
    global buf
    next_id[0] += 1
    msg = {"id": next_id[0], "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
    end = time.time() + timeout
    while time.time() < end:
        while b"\0" in buf:
            raw, buf = buf.split(b"\0", 1)
            r = json.loads(raw)
            if r.get("id") == next_id[0]:
                if "error" in r:
                    fail("%s: %s" % (method, r["error"]))
                return r.get("result", {})
        chunk = os.read(from_chrome_r, 65536)
        if not chunk:
            fail("chromium closed the pipe")
        buf += chunk
    fail("no answer to %s" % method)


target = cdp("Target.createTarget", {"url": base + "/admin/"})["targetId"]
session = cdp("Target.attachToTarget",
              {"targetId": target, "flatten": True})["sessionId"]


def js(expr):
    r = cdp("Runtime.evaluate", {"expression": expr, "returnByValue": True},
            session)
    return r.get("result", {}).get("value")


def wait_for(expr, what, seconds=20):
    end = time.time() + seconds
    while time.time() < end:
        if js(expr):
            return
        time.sleep(0.2)
    fail("the page never showed %s; it shows: %s" %
         (what, js("document.body ? document.body.innerText : ''")))



def press(label, paused, what):
    """Click account_details' button label; wait until the CLI's status
    says the processor is paused (or not)."""
    js("[...document.querySelectorAll('#processors tr[data-name=\"account_details\"] button')]"
       ".find(b => b.textContent === '%s').click()" % label)
    end = time.time() + 10
    while time.time() < end:
        st = json.loads(sluice("status"))
        p = [x for x in st["processors"] if x["name"] == "account_details"][0]
        if p["paused"] == paused:
            return
        time.sleep(0.2)
    fail("the %s button did not %s account_details" % (label, what))

# the processors and plugins of the daemon
wait_for("document.querySelector('#processors tr[data-name=\"account_details\"]') !== null",
         "account_details among the processors")
wait_for("document.getElementById('plugins').innerText.includes('account_filters.so')",
         "the plugins")
wait_for("document.getElementById('conn').textContent === 'connected'",
         "a connected API")
# the live tail: an event committed now appears
time.sleep(0.5)
sluice("commit", "--tenant", "demo", "--stream", "tail-probe", "--type",
       "ProbeEvent", '{"x":1}')
wait_for("document.getElementById('tail').innerText.includes('tail-probe')",
         "the committed event in the live tail")
# the pause button calls the API: the CLI's status sees it paused
press("pause", True, "pause")
wait_for("[...document.querySelectorAll('#processors tr[data-name=\"account_details\"] button')]"
         ".some(b => b.textContent === 'resume')", "a resume button")
press("resume", False, "resume")
# the read-model browser: get-one of acc-1
js("document.getElementById('m-projection').value = 'account_details';"
   "document.getElementById('m-key').value = 'acc-1';"
   "document.querySelector('#models button').click()")
wait_for("document.getElementById('m-out').textContent.includes('Everyday')",
         "acc-1's read model")

# the daemon served through all of it
sluice("status")
daemon.send_signal(signal.SIGTERM)
if daemon.wait(timeout=20) != 0:
    fail("sluiced exited %d" % daemon.returncode)

# ---- under auth: the page's requests need a token, as any client's ----
token = "admin-page-test-token"
digest = hashlib.sha256(token.encode()).hexdigest()
port = free_port()
base = "http://127.0.0.1:%d" % port
with open(cfg, "w") as f:
    f.write("""data_dir: data
plugin_dir: %s/plugins
endpoints:
  api: %s
  admin: http://127.0.0.1:%d/admin
event_store:
  sync: false
tenants:
  - id: demo
auth:
  tokens:
    - name: operator
      token_sha256: %s
      tenants: [demo]
      roles: [read, operate]
""" % (build, api, port, digest))
daemon = subprocess.Popen([os.path.join(build, "sluiced"), "-c", cfg],
                          stderr=open(os.path.join(tmp, "sluiced.log"), "a"))
procs.append(daemon)
os.environ["SLUICE_TOKEN"] = token  # the CLI's
for _ in range(100):
    if subprocess.run([os.path.join(build, "sluice"), "--url", api,
                       "status"], capture_output=True).returncode == 0:
        break
    time.sleep(0.1)
else:
    fail("sluiced (auth) did not start")
cdp("Page.navigate", {"url": base + "/admin/"}, session)
# no token typed: every request is refused
wait_for("document.getElementById('action').textContent.includes('EACCES')",
         "EACCES without a token")
if js("document.querySelector('#processors tbody tr') !== null"):
    fail("the page showed processors without a token")
# the token typed: the processors, and the buttons work
js("document.getElementById('token').value = '%s'" % token)
wait_for("document.querySelector('#processors tr[data-name=\"account_details\"]') !== null",
         "account_details with the token")
press("pause", True, "pause (under auth)")
cdp("Browser.close")
chrome.wait(timeout=20)
daemon.send_signal(signal.SIGTERM)
if daemon.wait(timeout=20) != 0:
    fail("sluiced (auth) exited %d" % daemon.returncode)
cleanup()
print("admin_browser_test: ok")
