// Inclusion proofs checked in the browser, with nothing but WebCrypto and
// the log's public key (vkey): RFC 6962 / RFC 9162 hashes and paths, the
// segment record, and the C2SP signed-note signature of the checkpoint.
// Mirrors crates/sealtrail-verify/src/proof.rs step by step. `verifyProof`
// resolves to {ok: true, steps} only when every step passed; any failure
// gives {ok: false, steps, error}.

const INCLUSION_FORMAT = "sealtrail-inclusion-proof/v1";
const SIG_PREFIX = "\u2014 ";
const MAX_PATH = 64;

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

class Failure extends Error {}
function ensure(ok, why) {
  if (!ok) throw new Failure(why);
}

// RFC 9162 §2.1.3.2: the root a leaf and its inclusion path lead to.
export async function rootFromInclusion(index, size, leaf, path) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  ensure(BigInt(index) < BigInt(size), `leaf ${index} is outside a tree of ${size}`);
  let r = leaf;
  for (const p of path) {
    ensure(sn !== 0n, "the path is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  ensure(sn === 0n, "the path is shorter than the tree is deep");
  return r;
}

// Segment record: version u8 | origin_len u16 | origin | number u64 |
// first_index u64 | count u64 | min_time i64 | max_time i64 | root | prev.
export function parseRecord(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  ensure(bytes.length >= 3, "segment record is truncated");
  ensure(v.getUint8(0) === 1, "segment record version is not 1");
  const olen = v.getUint16(1);
  ensure(olen > 0 && olen <= 255, "segment record origin length");
  const fixed = 3 + olen + 5 * 8 + 64;
  ensure(bytes.length === fixed, "segment record has the wrong length");
  const origin = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(3, 3 + olen));
  let at = 3 + olen;
  const u64 = () => {
    const x = v.getBigUint64(at);
    at += 8;
    return x;
  };
  const number = u64();
  const first = u64();
  const count = u64();
  u64();
  u64();
  const root = bytes.slice(at, at + 32);
  ensure(count > 0n, "segment record has no events");
  return { origin, number, first, count, root };
}

// vkey: <name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 key)>.
export async function parseVkey(line) {
  // Names hold no '+'; the base64 key may.
  const text = line.trim();
  const plus = text.indexOf("+");
  ensure(plus > 0 && text[plus + 9] === "+", "the log's vkey is malformed");
  const name = text.slice(0, plus);
  const idHex = text.slice(plus + 1, plus + 9);
  const keyB64 = text.slice(plus + 10);
  const raw = b64decode(keyB64);
  ensure(raw.length === 33 && raw[0] === 1, "the log's vkey is not an Ed25519 note key");
  const key = raw.subarray(1);
  const id = (await sha256(concat(new TextEncoder().encode(name + "\n"), raw))).subarray(0, 4);
  const hex = [...id].map((b) => b.toString(16).padStart(2, "0")).join("");
  ensure(hex === idHex.toLowerCase(), "the log's vkey has a wrong key id");
  return { name, id, key };
}

// A C2SP signed note checked against `vkey`; the checkpoint it carries.
export async function openCheckpoint(text, vkey) {
  const split = text.lastIndexOf("\n\n");
  ensure(split > 0, "the checkpoint is not a signed note");
  const body = text.slice(0, split + 1);
  const sigs = text.slice(split + 2).split("\n").filter((l) => l.length > 0);
  let verified = false;
  for (const line of sigs) {
    ensure(line.startsWith(SIG_PREFIX), "a signature line is malformed");
    const [name, sigB64] = line.slice(SIG_PREFIX.length).split(" ");
    if (name !== vkey.name) continue;
    const sig = b64decode(sigB64 || "");
    if (sig.length !== 68 || !equal(sig.subarray(0, 4), vkey.id)) continue;
    const key = await crypto.subtle.importKey("raw", vkey.key, { name: "Ed25519" }, false, [
      "verify",
    ]);
    const ok = await crypto.subtle.verify(
      { name: "Ed25519" },
      key,
      sig.subarray(4),
      new TextEncoder().encode(body),
    );
    ensure(ok, "the checkpoint's signature does not verify with the log's key");
    verified = true;
  }
  ensure(verified, "the checkpoint carries no signature by the log's key");
  const lines = body.split("\n");
  ensure(lines.length >= 4, "the checkpoint body is too short");
  ensure(/^[0-9]+$/.test(lines[1]), "the checkpoint size is not a number");
  const root = b64decode(lines[2]);
  ensure(root.length === 32, "the checkpoint root is not 32 bytes");
  return { origin: lines[0], size: BigInt(lines[1]), root };
}

function hashes(path, field) {
  ensure(Array.isArray(path) && path.length <= MAX_PATH, `${field} is not a path`);
  return path.map((h) => {
    const b = b64decode(h);
    ensure(b.length === 32, `${field} holds a hash that is not 32 bytes`);
    return b;
  });
}

// Every step of an inclusion proof; `ok` only when all of them passed.
export async function verifyProof(proof, vkeyLine) {
  const steps = [];
  const step = (name) => steps.push(name);
  try {
    ensure(proof && proof.format === INCLUSION_FORMAT, `not a ${INCLUSION_FORMAT}`);
    ensure(
      !proof.key_history || proof.key_history.length === 0,
      "the log's key was rotated: check this proof with `sealtrail verify-proof`",
    );
    const vkey = await parseVkey(vkeyLine);
    const cp = await openCheckpoint(proof.checkpoint, vkey);
    step(`checkpoint signed by ${vkey.name} (log size ${cp.size})`);
    const recordBytes = b64decode(proof.segment.record);
    const record = parseRecord(recordBytes);
    ensure(record.origin === cp.origin, "the segment record belongs to another log");
    const index = BigInt(proof.index);
    ensure(
      index >= record.first && index < record.first + record.count,
      `event ${index} is not in segment ${record.number}`,
    );
    ensure(BigInt(proof.segment.leaf_index) === index - record.first, "segment leaf index");
    ensure(BigInt(proof.log.leaf_index) === record.number, "log leaf index");
    ensure(BigInt(proof.log.tree_size) === cp.size, "log tree size");
    const leaf = await leafHash(new TextEncoder().encode(proof.entry));
    const segRoot = await rootFromInclusion(
      index - record.first,
      record.count,
      leaf,
      hashes(proof.segment.path, "segment.path"),
    );
    ensure(equal(segRoot, record.root), "the entry is not included in its segment");
    step(`entry included in segment ${record.number}`);
    const logRoot = await rootFromInclusion(
      record.number,
      cp.size,
      await leafHash(recordBytes),
      hashes(proof.log.path, "log.path"),
    );
    ensure(equal(logRoot, cp.root), "the segment is not included in the checkpointed log");
    step(`segment ${record.number} included in the signed log`);
    return { ok: true, steps };
  } catch (e) {
    return { ok: false, steps, error: e instanceof Failure ? e.message : String(e) };
  }
}
