// The admin page: the daemon's API over WebSocket (NNG's req/rep: a 4-byte
// request id, then the msgpack request; the reply carries the same id) at
// PATH/api, and the live feed (NNG's pub: topic "\n" msgpack) at PATH/feed.
"use strict";

const base = location.pathname.replace(/[^/]*$/, "");
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base;
const $ = (id) => document.getElementById(id);

// ---- the API ----
const api = {
  ws: null, next: 1, waiting: new Map(), queue: [],
  open() {
    const ws = new WebSocket(wsBase + "api", ["rep.sp.nanomsg.org"]);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      $("conn").textContent = "connected"; $("conn").className = "state up";
      this.queue.splice(0).forEach((f) => ws.send(f));
    };
    ws.onclose = () => {
      $("conn").textContent = "disconnected: retrying"; $("conn").className = "state down";
      for (const [, w] of this.waiting) w.reject(new Error("disconnected"));
      this.waiting.clear();
      this.ws = null;
      setTimeout(() => this.open(), 1000);
    };
    ws.onmessage = (ev) => {
      const b = new Uint8Array(ev.data);
      if (b.length < 4) return;
      const id = new DataView(ev.data).getUint32(0) & 0x7fffffff;
      const w = this.waiting.get(id);
      if (!w) return;
      this.waiting.delete(id);
      try { w.resolve(msgpack.decode(b.subarray(4))); } catch (e) { w.reject(e); }
    };
    this.ws = ws;
  },
  // One request: {op, ...fields}; resolves with the reply map.
  call(op, fields) {
    const id = this.next++ & 0x7fffffff || (this.next = 2, 1);
    const req = Object.assign({ v: 1, op: op }, fields || {});
    const token = $("token").value;
    if (token) req.token = token;
    const body = msgpack.encode(req);
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, (id | 0x80000000) >>> 0);
    frame.set(body, 4);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
      else this.queue.push(frame);
    });
  },
};

// ---- rendering ----
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function button(td, label, op, p) {
  const b = document.createElement("button");
  b.textContent = label;
  b.onclick = async () => {
    const fields = { id: p.projection };
    if (p.tenant) fields.tenant = p.tenant;
    try {
      const r = await api.call(op, fields);
      $("action").textContent = r.ok ? `${op} ${p.name} (${p.tenant}): done`
        : `${op} ${p.name}: ${r.error}: ${r.message}`;
    } catch (e) { $("action").textContent = `${op} ${p.name}: ${e.message}`; }
    refresh();
  };
  td.appendChild(b);
}

function renderStatus(st) {
  $("head").textContent = "head " + st.head;
  const tb = $("processors").tBodies[0];
  tb.textContent = "";
  const rows = (st.processors || []).concat(st.emitting_projections || []);
  for (const p of rows) {
    const tr = document.createElement("tr");
    tr.dataset.name = p.name;
    cell(tr, p.tenant);
    cell(tr, p.name);
    cell(tr, p.kind || (p.system ? "system" : "emitting"));
    cell(tr, p.status + (p.status_reason ? ": " + p.status_reason : ""), p.status);
    cell(tr, p.position, "num");
    cell(tr, Math.max(0, st.head - p.position), "num");
    cell(tr, Math.round(p.events_per_sec || 0), "num");
    const f = cell(tr, p.failing_count || 0, p.failing_count ? "num failing" : "num");
    if (p.failing && p.failing.length)
      f.title = p.failing.map((x) => `${x.key || x.partition || ""}: ${x.reason}`).join("\n");
    const acts = cell(tr, "");
    button(acts, "retry", "retry", p);
    button(acts, "reset", "reset", p);
    button(acts, p.paused ? "resume" : "pause", p.paused ? "resume" : "pause", p);
    tb.appendChild(tr);
  }
  const pb = $("plugins").tBodies[0];
  pb.textContent = "";
  for (const pl of st.plugins || []) {
    const tr = document.createElement("tr");
    cell(tr, pl.file); cell(tr, pl.name); cell(tr, pl.version);
    cell(tr, pl.loaded ? "yes" : "no"); cell(tr, pl.error, pl.error ? "error" : "");
    pb.appendChild(tr);
  }
  fillSelect($("m-tenant"), st.tenants || []);
  fillSelect($("m-projection"), (st.projections || [])
    .filter((d) => d.kind === "projection").map((d) => d.name));
}

function fillSelect(sel, values) {
  const had = sel.value;
  if (sel.options.length === values.length &&
      values.every((v, i) => sel.options[i].value === v)) return;
  sel.textContent = "";
  for (const v of values) {
    const o = document.createElement("option");
    o.value = o.textContent = v;
    sel.appendChild(o);
  }
  if (values.includes(had)) sel.value = had;
}

async function refresh() {
  try {
    const st = await api.call("status");
    if (st.ok) renderStatus(st);
    else $("action").textContent = `status: ${st.error}: ${st.message}`;
  } catch (e) { /* reconnecting */ }
}

$("models").onsubmit = async (ev) => {
  ev.preventDefault();
  const fields = { tenant: $("m-tenant").value, projection: $("m-projection").value };
  const key = $("m-key").value;
  try {
    const r = key ? await api.call("get_one", Object.assign({ key }, fields))
      : await api.call("get_all", fields);
    $("m-out").textContent = JSON.stringify(r, null, 2);
  } catch (e) { $("m-out").textContent = e.message; }
};

// ---- the live tail ----
function openFeed() {
  const ws = new WebSocket(wsBase + "feed", ["pub.sp.nanomsg.org"]);
  ws.binaryType = "arraybuffer";
  ws.onclose = () => setTimeout(openFeed, 1000);
  ws.onmessage = (ev) => {
    const b = new Uint8Array(ev.data);
    const nl = b.indexOf(10);
    if (nl < 2 || b[0] !== 0x65 || b[1] !== 0x2f) return; // "e/": events
    let events;
    try { events = msgpack.decode(b.subarray(nl + 1)); } catch (e) { return; }
    const tb = $("tail").tBodies[0];
    for (const e of events) {
      const tr = document.createElement("tr");
      cell(tr, e.position, "num"); cell(tr, e.tenant); cell(tr, e.stream);
      cell(tr, e.revision, "num"); cell(tr, e.type);
      cell(tr, new Date(e.occurred / 1e6).toISOString());
      tb.insertBefore(tr, tb.firstChild);
    }
    while (tb.rows.length > 100) tb.deleteRow(-1);
  };
}

api.open();
openFeed();
refresh();
setInterval(refresh, 1000);
