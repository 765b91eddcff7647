// MessagePack, as much as the Sluice API needs: encode maps, arrays,
// strings, numbers, booleans and null; decode every type (64-bit integers
// become Numbers, exact up to 2^53, which positions and times fit).
"use strict";

const msgpack = (() => {
  const te = new TextEncoder(), td = new TextDecoder();

  function encode(value) {
    const out = [];
    const u8 = (b) => out.push(b & 0xff);
    const be = (v, n) => { for (let i = n - 1; i >= 0; i--) u8(Number(BigInt(v) >> BigInt(8 * i))); };
    function str(s) {
      const b = te.encode(s);
      if (b.length < 32) u8(0xa0 | b.length);
      else if (b.length < 256) { u8(0xd9); u8(b.length); }
      else if (b.length < 65536) { u8(0xda); be(b.length, 2); }
      else { u8(0xdb); be(b.length, 4); }
      for (const x of b) u8(x);
    }
    function enc(v) {
      if (v === null || v === undefined) u8(0xc0);
      else if (v === true) u8(0xc3);
      else if (v === false) u8(0xc2);
      else if (typeof v === "string") str(v);
      else if (typeof v === "number" && Number.isInteger(v) && v >= 0) {
        if (v < 128) u8(v);
        else if (v < 256) { u8(0xcc); u8(v); }
        else if (v < 65536) { u8(0xcd); be(v, 2); }
        else if (v < 4294967296) { u8(0xce); be(v, 4); }
        else { u8(0xcf); be(v, 8); }
      } else if (typeof v === "number" && Number.isInteger(v)) {
        u8(0xd3); be(BigInt.asUintN(64, BigInt(v)), 8);
      } else if (typeof v === "number") {
        const b = new DataView(new ArrayBuffer(8));
        b.setFloat64(0, v);
        u8(0xcb);
        for (let i = 0; i < 8; i++) u8(b.getUint8(i));
      } else if (Array.isArray(v)) {
        if (v.length < 16) u8(0x90 | v.length); else { u8(0xdc); be(v.length, 2); }
        v.forEach(enc);
      } else if (typeof v === "object") {
        const keys = Object.keys(v).filter((k) => v[k] !== undefined);
        if (keys.length < 16) u8(0x80 | keys.length); else { u8(0xde); be(keys.length, 2); }
        for (const k of keys) { str(k); enc(v[k]); }
      } else throw new Error("msgpack: cannot encode " + typeof v);
    }
    enc(value);
    return new Uint8Array(out);
  }

  // Decode the object at offset of bytes (a Uint8Array); returns
  // [value, next offset].
  function decodeAt(bytes, offset) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let p = offset;
    const take = (n) => { if (p + n > bytes.length) throw new Error("msgpack: truncated"); const at = p; p += n; return at; };
    const u64 = (at) => Number(dv.getBigUint64(at));
    const i64 = (at) => Number(dv.getBigInt64(at));
    const s = (n) => td.decode(bytes.subarray(take(n), p));
    function arr(n) { const a = []; for (let i = 0; i < n; i++) a.push(dec()); return a; }
    function map(n) { const m = {}; for (let i = 0; i < n; i++) { const k = dec(); m[k] = dec(); } return m; }
    function dec() {
      const b = bytes[take(1)];
      if (b < 0x80) return b;
      if (b < 0x90) return map(b & 0x0f);
      if (b < 0xa0) return arr(b & 0x0f);
      if (b < 0xc0) return s(b & 0x1f);
      if (b >= 0xe0) return b - 256;
      switch (b) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: return bytes.slice(take(bytes[p] + 1) + 1, p);
        case 0xc5: { const n = dv.getUint16(take(2)); return bytes.slice(take(n), p); }
        case 0xc6: { const n = dv.getUint32(take(4)); return bytes.slice(take(n), p); }
        case 0xca: return dv.getFloat32(take(4));
        case 0xcb: return dv.getFloat64(take(8));
        case 0xcc: return bytes[take(1)];
        case 0xcd: return dv.getUint16(take(2));
        case 0xce: return dv.getUint32(take(4));
        case 0xcf: return u64(take(8));
        case 0xd0: return dv.getInt8(take(1));
        case 0xd1: return dv.getInt16(take(2));
        case 0xd2: return dv.getInt32(take(4));
        case 0xd3: return i64(take(8));
        case 0xd9: return s(bytes[take(1)]);
        case 0xda: return s(dv.getUint16(take(2)));
        case 0xdb: return s(dv.getUint32(take(4)));
        case 0xdc: return arr(dv.getUint16(take(2)));
        case 0xdd: return arr(dv.getUint32(take(4)));
        case 0xde: return map(dv.getUint16(take(2)));
        case 0xdf: return map(dv.getUint32(take(4)));
        default: throw new Error("msgpack: unsupported type 0x" + b.toString(16));
      }
    }
    const v = dec();
    return [v, p];
  }

  return { encode, decode: (bytes) => decodeAt(bytes, 0)[0], decodeAt };
})();
