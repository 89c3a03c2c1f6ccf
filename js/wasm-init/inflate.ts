// A raw DEFLATE (RFC 1951) decoder, synchronous, for the wasm bytes that
// js/wasm-init/index.ts carries inline. Why inline, and why compressed:
// see that file. The input is our own build output, but the decoder still
// checks every bound and throws on malformed data rather than reading or
// writing out of range.
//
// Each Huffman code becomes one lookup table indexed by as many input bits
// as its longest code, so a symbol costs one read; all state is in locals
// of one function (closures over mutable state made it 20x slower in V8).
// About 2 ms for the 130 KB module on our CI machine, cold.

const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193,
  12289, 16385, 24577,
];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/** The order in which the code length code's lengths are sent. */
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

function bad(what: string): never {
  throw new Error(`edgecache: corrupt inline wasm (${what})`);
}

/**
 * The lookup table of a canonical Huffman code given its code lengths:
 * indexed by the next `log2(length)` input bits (least significant first,
 * as deflate packs them), each entry is `(symbol << 4) | codeLength`, or 0
 * where no code matches (an incomplete code).
 */
function table(lengths: Uint8Array): Uint16Array {
  const count = new Uint16Array(16);
  let max = 1;
  for (const len of lengths) {
    count[len]++;
    if (len > max) max = len;
  }
  count[0] = 0;
  const next = new Uint16Array(16);
  let code = 0;
  let left = 1;
  for (let len = 1; len < 16; len++) {
    left = (left << 1) - count[len];
    if (left < 0) bad('over-subscribed code');
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  const t = new Uint16Array(1 << max);
  for (let sym = 0; sym < lengths.length; sym++) {
    const len = lengths[sym];
    if (!len) continue;
    const c = next[len]++;
    let rev = 0;
    for (let b = 0; b < len; b++) rev |= ((c >>> b) & 1) << (len - 1 - b);
    for (let i = rev; i < t.length; i += 1 << len) t[i] = (sym << 4) | len;
  }
  return t;
}

let fixed: [Uint16Array, Uint16Array] | undefined;

/**
 * Decodes raw DEFLATE data whose decoded length is known (`size`): returns
 * exactly `size` bytes, or throws.
 */
export function inflateRaw(input: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const end = input.length;
  let o = 0;
  let pos = 0;
  // Up to 32 input bits, least significant first; past the input's end
  // zero bits are fed in and counted in `padded`, checked at the end.
  let buf = 0;
  let cnt = 0;
  let padded = 0;
  let last = 0;
  do {
    while (cnt <= 24) (pos < end ? (buf |= input[pos++] << cnt) : padded++), (cnt += 8);
    last = buf & 1;
    const type = (buf >>> 1) & 3;
    buf >>>= 3;
    cnt -= 3;
    if (type === 0) {
      // A stored block starts at the next byte: give back the whole bytes read ahead.
      const back = cnt >>> 3;
      if (padded > back) bad('input ends early');
      pos -= back - padded;
      padded = 0;
      buf = 0;
      cnt = 0;
      if (pos + 4 > end) bad('input ends early');
      const len = input[pos] | (input[pos + 1] << 8);
      if (len !== (~(input[pos + 2] | (input[pos + 3] << 8)) & 0xffff)) bad('stored length');
      pos += 4;
      if (pos + len > end || o + len > size) bad('stored block too long');
      out.set(input.subarray(pos, pos + len), o);
      pos += len;
      o += len;
      continue;
    }
    let lt: Uint16Array;
    let dt: Uint16Array;
    if (type === 1) {
      if (!fixed) {
        const l = new Uint8Array(288);
        l.fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280, 288);
        fixed = [table(l), table(new Uint8Array(30).fill(5))];
      }
      [lt, dt] = fixed;
    } else if (type === 2) {
      const nlen = (buf & 31) + 257;
      const ndist = ((buf >>> 5) & 31) + 1;
      const ncode = ((buf >>> 10) & 15) + 4;
      buf >>>= 14;
      cnt -= 14;
      if (nlen > 286 || ndist > 30) bad('too many codes');
      const clen = new Uint8Array(19);
      for (let i = 0; i < ncode; i++) {
        while (cnt <= 24) (pos < end ? (buf |= input[pos++] << cnt) : padded++), (cnt += 8);
        clen[CL_ORDER[i]] = buf & 7;
        buf >>>= 3;
        cnt -= 3;
      }
      const ct = table(clen);
      const lengths = new Uint8Array(nlen + ndist);
      for (let i = 0; i < nlen + ndist; ) {
        while (cnt <= 24) (pos < end ? (buf |= input[pos++] << cnt) : padded++), (cnt += 8);
        const e = ct[buf & (ct.length - 1)];
        if (!e) bad('no such code');
        buf >>>= e & 15;
        cnt -= e & 15;
        const sym = e >>> 4;
        if (sym < 16) {
          lengths[i++] = sym;
          continue;
        }
        let len = 0;
        let rep: number;
        if (sym === 16) {
          if (i === 0) bad('repeat with no first length');
          len = lengths[i - 1];
          rep = 3 + (buf & 3);
          buf >>>= 2;
          cnt -= 2;
        } else if (sym === 17) {
          rep = 3 + (buf & 7);
          buf >>>= 3;
          cnt -= 3;
        } else {
          rep = 11 + (buf & 127);
          buf >>>= 7;
          cnt -= 7;
        }
        if (i + rep > nlen + ndist) bad('too many lengths');
        lengths.fill(len, i, i + rep);
        i += rep;
      }
      if (lengths[256] === 0) bad('no end-of-block code');
      lt = table(lengths.subarray(0, nlen));
      dt = table(lengths.subarray(nlen));
    } else {
      return bad('block type 3');
    }
    const lmask = lt.length - 1;
    const dmask = dt.length - 1;
    for (;;) {
      while (cnt <= 24) (pos < end ? (buf |= input[pos++] << cnt) : padded++), (cnt += 8);
      let e = lt[buf & lmask];
      if (!e) bad('no such code');
      buf >>>= e & 15;
      cnt -= e & 15;
      let sym = e >>> 4;
      if (sym < 256) {
        out[o++] = sym; // past `size` a typed array drops the write; the final check fails
        continue;
      }
      if (sym === 256) break;
      sym -= 257;
      if (sym >= 29) bad('length symbol');
      const lx = LEN_EXTRA[sym];
      const len = LEN_BASE[sym] + (buf & ((1 << lx) - 1));
      buf >>>= lx;
      cnt -= lx;
      while (cnt <= 24) (pos < end ? (buf |= input[pos++] << cnt) : padded++), (cnt += 8);
      e = dt[buf & dmask];
      if (!e) bad('no such code');
      buf >>>= e & 15;
      cnt -= e & 15;
      const ds = e >>> 4;
      if (ds >= 30) bad('distance symbol');
      while (cnt <= 24) (pos < end ? (buf |= input[pos++] << cnt) : padded++), (cnt += 8);
      const dx = DIST_EXTRA[ds];
      const d = DIST_BASE[ds] + (buf & ((1 << dx) - 1));
      buf >>>= dx;
      cnt -= dx;
      if (d > o) bad('distance too far back');
      if (o + len > size) bad('output too long');
      for (const stop = o + len; o < stop; o++) out[o] = out[o - d];
    }
  } while (!last);
  // Every bit consumed must have come from the input.
  if (padded * 8 > cnt) bad('input ends early');
  if (o !== size) bad('output size');
  return out;
}
