#!/usr/bin/env python3
"""Independent verifier for a sealtrail ledger, written from docs/LEDGER.md alone.

    verify_ledger.py --data DIR --vkey FILE     check every sealed segment, the
                                                record chain, the log tree and
                                                the signed checkpoint
    verify_ledger.py --proof FILE --vkey FILE   check an inclusion or a
                                                consistency proof offline
    verify_ledger.py --bundle FILE --vkey FILE  check an evidence bundle (§11)
    verify_ledger.py --data DIR --vkey FILE --kek FILE
                                                also decrypt and rehash the
                                                entries of encrypted (version 3)
                                                segments (§4.9); without --kek
                                                their stored leaf hashes are
                                                checked, their payloads are not
    verify_ledger.py --data DIR --vkey FILE --witness-vkey W [--witness-vkey W2 ...] [--witness-quorum N]
                                                also require ledger/checkpoint.witnessed
                                                cosigned by N of the witnesses (§13.4)

A log whose key was rotated is followed from --vkey through
ledger/key-history.json (or a proof's `key_history`, a bundle's
`key-history.json`) (§14.4). Only events a matching signed checkpoint covers
count as verified; more than one sealed segment beyond it fails (§9).

Prints one JSON object and exits 0 when everything verifies, 1 when not, 2 on
usage errors. JSON is parsed by the one rule of §12. Standard library only, plus `cryptography` for Ed25519 and
`zstandard` for compacted (version 2) segments, `cryptography`'s AESGCM for
encrypted (version 3) segments. Section numbers (§) refer to
docs/LEDGER.md.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import struct
import unicodedata
import sys

import zstandard
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# --- constants (§4, §5, §10) -------------------------------------------------
SEGMENT_MAGIC = b"SEALSEG\x00"
TRAILER_MAGIC = b"SEALEND\x00"
SEGMENT_VERSIONS = (1, 2, 3)  # 1: entry; 2: zstd frame of the entry (§4.8); 3: encrypted entry (§4.9)
KEY_MAGIC = b"SEALKEY\x00"
FRAME_AAD_TAG = b"SEALFRM\x00"
FRAME_OVERHEAD = 32 + 12 + 16  # leaf hash, nonce, GCM tag (§4.9)
MAX_DICT_LEN = 256 * 1024
RECORD_VERSION = 1
SEAL_MARKER = 0xFFFFFFFF
MAX_ENTRY_LEN = 1 << 20
MAX_ORIGIN_LEN = 255
MAX_SEGMENT_EVENTS = 1 << 22
BLOCK_SHIFT = 6
BLOCK = 1 << BLOCK_SHIFT
INCLUSION_FORMAT = "sealtrail-inclusion-proof/v1"
CONSISTENCY_FORMAT = "sealtrail-consistency-proof/v1"
CRASH_WINDOW_SEGMENTS = 1  # sealed segments a crash can leave unsigned (§9)
SEGMENT_NAME = re.compile(r"^([0-9]{12})\.seg$")


class Invalid(Exception):
    """Something does not verify; the message says what."""

    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


# --- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 (§4.1) ------------
def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --- RFC 6962 hashing (§3.2) ---------------------------------------------------
def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def mth(leaves):
    """RFC 6962 §2.1 Merkle Tree Hash of a list of leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of 2 < n
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def root_from_inclusion(index, size, leaf, path):
    """RFC 9162 §2.1.3.2: the root implied by an inclusion path."""
    if index >= size:
        raise Invalid("proof", f"leaf index {index} is not below tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Invalid("proof", "inclusion path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Invalid("proof", "inclusion path is too short")
    return r


def verify_consistency(size1, size2, path, root1, root2):
    """RFC 9162 §2.1.4.2 for 0 < size1 <= size2."""
    if not 0 < size1 <= size2:
        raise Invalid("proof", f"sizes must satisfy 0 < old <= new, got {size1}, {size2}")
    if size1 == size2:
        if path or root1 != root2:
            raise Invalid("proof", "equal sizes need an empty path and equal roots")
        return
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the seed
        path = [root1] + path
    if not path:
        raise Invalid("proof", "consistency path is empty")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Invalid("proof", "consistency path is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise Invalid("proof", "consistency path does not lead to both roots")


# --- keys and signed notes (§6) ------------------------------------------------
def b64decode(text, what):
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid("format", f"{what} is not standard base64") from e


def key_id(name, public_key):
    return sha256(name.encode() + b"\n\x01" + public_key)[:4]


def parse_vkey(line, alg=1, kind="vkey"):
    """`<name>+<8 hex key id>+<base64(alg || 32-byte Ed25519 key)>` (§6.3; alg 4:
    a witness's cosignature/v1 key, §13.1). Returns (name, key id, public key,
    the vkey line)."""
    name, id_hex, key_b64 = (line.split("+", 2) + ["", ""])[:3]
    raw = b64decode(key_b64, "vkey key")
    if not name or not re.fullmatch(r"[0-9a-f]{8}", id_hex) or len(raw) != 33 or raw[0] != alg:
        raise Invalid(kind, "not an Ed25519 vkey line")
    if sha256(name.encode() + b"\n" + raw)[:4] != bytes.fromhex(id_hex):
        raise Invalid(kind, "key id does not match name and key")
    return name, bytes.fromhex(id_hex), Ed25519PublicKey.from_public_bytes(raw[1:]), line


def load_vkey(path, alg=1):
    with open(path, encoding="utf-8") as f:
        return parse_vkey(f.read().removesuffix("\n"), alg)


def open_note(note, vkey, kind="checkpoint_signature"):
    """The signed text of a note with a valid signature by vkey (§6.2)."""
    name, kid, public_key = vkey[:3]
    if any(c != "\n" and unicodedata.category(c) == "Cc" for c in note):
        raise Invalid(kind, "note holds a control character")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Invalid(kind, "not a signed note")
    text, sig_lines = note[: split + 1], note[split + 2 : -1].split("\n")
    ours = 0
    for line in sig_lines:
        m = re.fullmatch("\u2014 (\\S+) (\\S+)", line)
        if not m:
            raise Invalid(kind, f"bad signature line {line!r}")
        blob = b64decode(m.group(2), "signature")
        if m.group(1) != name or blob[:4] != kid:
            continue  # another key's signature (a witness, say): ignored
        if len(blob) != 68:
            raise Invalid(kind, "our signature is not key id (4) + Ed25519 (64)")
        try:
            public_key.verify(blob[4:], text.encode())
        except InvalidSignature as e:
            raise Invalid(kind, "signature does not verify") from e
        ours += 1
    if ours == 0:
        raise Invalid(kind, f"no signature by {name}")
    return text


def parse_checkpoint_body(text, kind="checkpoint_signature"):
    """(origin, size, root) of a checkpoint body (§6.1), not verified."""
    lines = text[:-1].split("\n")
    if len(lines) < 3 or "" in lines or not re.fullmatch(r"0|[1-9][0-9]{0,19}", lines[1]) or int(lines[1]) >= 2**64:
        raise Invalid(kind, "malformed checkpoint body")
    root = b64decode(lines[2], "checkpoint root")
    if len(root) != 32 or base64.b64encode(root).decode() != lines[2]:
        raise Invalid(kind, "root is not the canonical base64 of 32 bytes")
    return lines[0], int(lines[1]), root


def unverified_size(note):
    """The size a checkpoint note claims, to pick the key that must have signed it (§14.4 step 4)."""
    split = note.rfind("\n\n")
    if split < 0:
        raise Invalid("checkpoint_signature", "not a signed note")
    return parse_checkpoint_body(note[: split + 1])[1]


def open_checkpoint(note, vkey):
    """Verifies a signed checkpoint note; returns (origin, size, root) (§6.1, §6.2)."""
    name = vkey[0]
    origin, size, root = parse_checkpoint_body(open_note(note, vkey))
    if origin != name:
        raise Invalid("checkpoint_signature", f"origin {origin!r} is not the key name {name!r}")
    return origin, size, root


# --- the key history (§14) -------------------------------------------------------
TRANSITION_HEADER = "sealtrail key transition v1"
MAX_KEY_HISTORY_LEN = 1 << 20
MAX_TRANSITIONS = 256
MAX_TRANSITION_ENTRY_LEN = 64 * 1024
DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def same_key(a, b):
    return a[3] == b[3]  # the vkey lines: name, key id and key


def open_transition(n, note):
    """§14.1: six lines, signed by the old key (authority) and the new key."""
    split = note.rfind("\n\n")
    if split < 0 or not isinstance(note, str):
        raise Invalid("key_history", f"transition {n} is not a signed note")
    body = note[: split + 1]
    lines = body[:-1].split("\n")
    if len(lines) != 6 or lines[0] != TRANSITION_HEADER:
        raise Invalid("key_history", f"transition {n}: not six lines of a v1 transition")
    _, origin, size, index, old, new = lines
    if not DECIMAL.fullmatch(size) or not DECIMAL.fullmatch(index) or int(size) == 0:
        raise Invalid("key_history", f"transition {n}: S and I must be canonical decimals, S >= 1")
    try:
        old, new = parse_vkey(old), parse_vkey(new)
    except Invalid as e:
        raise Invalid("key_history", f"transition {n}: {e.detail}") from e
    if old[0] != origin or new[0] != origin or old[1] == new[1] or same_key(old, new):
        raise Invalid("key_history", f"transition {n}: keys not named after the origin, or equal")
    if open_note(note, old, "forged_transition") != body:
        raise Invalid("forged_transition", f"transition {n}")
    if open_note(note, new, "key_history") != body:
        raise Invalid("key_history", f"transition {n}")
    return {"origin": origin, "size": int(size), "index": int(index), "old": old, "new": new}


def check_transition_entry(t, note, entry):
    """§14.4 step 3: an admin/key_rotation entry carrying exactly the note."""
    try:
        if len(entry) > MAX_TRANSITION_ENTRY_LEN:
            raise StrictJsonError("too large")
        event = strict_loads(entry)["event"]
        ok = event["category"] == "admin" and event["action"] == "key_rotation"
        ok = ok and (event.get("attrs") or {}).get("key_transition") == note
    except (StrictJsonError, KeyError, TypeError, AttributeError) as e:
        raise Invalid("key_transition_entry", f"transition entry {t['index']}: {e}") from e
    if not ok:
        raise Invalid("key_transition_entry", f"transition entry {t['index']} is not the logged transition")


def parse_history_records(records):
    """The `transitions` array of §14.3: each exactly note, checkpoint, entry (strings)."""
    if not isinstance(records, list) or len(records) > MAX_TRANSITIONS:
        raise Invalid("key_history", f"transitions must be a list of at most {MAX_TRANSITIONS}")
    for r in records:
        if not isinstance(r, dict) or set(r) != {"note", "checkpoint", "entry"} or not all(
            isinstance(v, str) for v in r.values()
        ):
            raise Invalid("key_history", "a transition must have exactly note, checkpoint, entry (strings)")
    return records


def parse_history_file(data):
    if len(data) > MAX_KEY_HISTORY_LEN:
        raise Invalid("key_history", "key history is larger than 1 MiB")
    try:
        h = strict_loads(data)
    except StrictJsonError as e:
        raise Invalid("key_history", f"key history: {e}") from e
    if not isinstance(h, dict) or set(h) != {"transitions"}:
        raise Invalid("key_history", "key history must have exactly the member transitions")
    return parse_history_records(h["transitions"])


class KeyChain:
    """The keys of a log followed from a trusted key `anchor` (§14.4)."""

    def __init__(self, anchor, records=()):
        self.keys, self.ends, self.anchor, self.handoffs = [anchor], [], 0, []
        parsed = []
        for n, rec in enumerate(records):  # step 1
            t = open_transition(n, rec["note"])
            if parsed:
                prev = parsed[-1]
                if not same_key(t["old"], prev["new"]) or t["origin"] != prev["origin"]:
                    raise Invalid("key_history", f"transition {n} does not retire the current key")
                if any(same_key(p["old"], t["new"]) for p in parsed):
                    raise Invalid("key_history", f"transition {n} brings back a retired key")
                if t["size"] <= prev["size"] or t["index"] <= prev["index"]:
                    raise Invalid("key_history", f"transition {n}: S and I must grow")
            parsed.append(t)
        if not parsed:
            return
        self.keys = [parsed[0]["old"]] + [t["new"] for t in parsed]
        self.ends = [t["size"] for t in parsed]
        found = [k for k, key in enumerate(self.keys) if same_key(key, anchor)]
        if not found:  # step 2
            raise Invalid("unknown_key", "the trusted key is not in the key history")
        self.anchor = found[0]
        for n, (t, rec) in enumerate(zip(parsed, records)):
            if n < self.anchor:
                continue
            try:  # step 3
                origin, size, root = open_checkpoint(rec["checkpoint"], t["old"])
            except Invalid as e:
                raise Invalid("key_transition", f"transition {n}: old key's checkpoint: {e.detail}") from e
            if size != t["size"]:
                raise Invalid("key_transition", f"transition {n}: old key's checkpoint has size {size}, not S")
            check_transition_entry(t, rec["note"], rec["entry"].encode("utf-8"))
            self.handoffs.append(dict(t, root=root, entry=rec["entry"].encode("utf-8")))

    def current(self):
        return self.keys[-1]

    def key_for(self, size):
        k = sum(1 for end in self.ends if size > end)
        if k < self.anchor:
            raise Invalid("before_trusted_key", f"a checkpoint of size {size} predates the trusted key")
        return k, self.keys[k]

    def open_checkpoint(self, note):
        """Step 4: the checkpoint is verified with the key for its size."""
        if not self.ends:
            return open_checkpoint(note, self.keys[0])
        k, key = self.key_for(unverified_size(note))
        try:
            return open_checkpoint(note, key)
        except Invalid:
            for old in self.keys[:k]:
                try:
                    open_checkpoint(note, old)
                except Invalid:
                    continue
                raise Invalid("retired_key", "checkpoint signed by a key retired before its size")
            raise


# --- witness cosignatures (§13) ----------------------------------------------------
MAX_COSIGNATURE_TIME = 2**63 - 1


def cosigners(note, witnesses):
    """Names of the trusted `witnesses` with a valid cosignature/v1 line on note (§13.1)."""
    names = [w[0] for w in witnesses]
    if len(set(names)) != len(names):
        raise Invalid("usage", "two trusted witness keys with the same name")
    split = note.rfind("\n\n")
    body, found = note[: split + 1], set()
    for line in note[split + 2 : -1].split("\n"):
        m = re.fullmatch("\u2014 (\\S+) (\\S+)", line)
        if not m:
            raise Invalid("witness_quorum", f"bad signature line {line!r}")
        blob = b64decode(m.group(2), "signature")
        for name, kid, public_key, _ in witnesses:
            if m.group(1) != name or blob[:4] != kid:
                continue
            (t,) = struct.unpack(">Q", blob[4:12]) if len(blob) == 76 else (0,)
            if not 1 <= t <= MAX_COSIGNATURE_TIME:
                raise Invalid("witness_quorum", f"cosignature by {name}: bad length or time")
            try:
                public_key.verify(blob[12:], f"cosignature/v1\ntime {t}\n".encode() + body.encode())
            except InvalidSignature as e:
                raise Invalid("witness_quorum", f"cosignature by {name} does not verify") from e
            found.add(name)
    return sorted(found)


def open_witnessed(ledger, chain, witnesses, quorum):
    """`ledger/checkpoint.witnessed` (§13.3, §13.4): (size, root, cosigner names)."""
    try:
        with open(os.path.join(ledger, "checkpoint.witnessed"), encoding="utf-8") as f:
            note = f.read(1 << 20)
    except FileNotFoundError as e:
        raise Invalid("witness_quorum", "no ledger/checkpoint.witnessed") from e
    try:  # signed by the log key for its size
        _, key = chain.key_for(unverified_size(note))
    except Invalid:
        key = chain.current()
    try:
        _, size, root = open_checkpoint(note, key)
    except Invalid as e:
        raise Invalid("witness_quorum", f"cosigned checkpoint: {e.detail}") from e
    names = cosigners(note, witnesses)
    if len(names) < quorum:
        raise Invalid("witness_quorum", f"{len(names)} of the trusted witnesses cosigned, {quorum} required")
    return size, root, names


# --- segment records (§5) ------------------------------------------------------
def parse_record(b):
    if len(b) < 3 or b[0] != RECORD_VERSION:
        raise Invalid("record", "unknown record version or truncated record")
    (olen,) = struct.unpack_from(">H", b, 1)
    if not 1 <= olen <= MAX_ORIGIN_LEN or len(b) != 3 + olen + 40 + 64:
        raise Invalid("record", "bad origin length or record size")
    number, first, count, tmin, tmax = struct.unpack_from(">QQQqq", b, 3 + olen)
    if count == 0:
        raise Invalid("record", "segment record has no events")
    at = 3 + olen + 40
    return {
        "origin": b[3 : 3 + olen].decode("utf-8"),
        "number": number,
        "first_index": first,
        "count": count,
        "min_time_ms": tmin,
        "max_time_ms": tmax,
        "root": b[at : at + 32],
        "prev": b[at + 32 : at + 64],
    }


# --- one parsing rule for JSON (§12) ------------------------------------------
class StrictJsonError(ValueError):
    pass


def _no_duplicates(pairs):
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        dup = next(k for k in names if names.count(k) > 1)
        raise StrictJsonError(f"repeats the member {dup!r}")
    return dict(pairs)


def _no_constant(name):
    raise StrictJsonError(f"{name} is not JSON")


def _check_strings(v):
    """Lone surrogates (from \\ud800 escapes) are not Unicode strings (§12 rule 2)."""
    if isinstance(v, str):
        v.encode("utf-8")
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_strings(k)
            _check_strings(x)
    elif isinstance(v, list):
        for x in v:
            _check_strings(x)


def strict_loads(data):
    """JSON by §12: no BOM, UTF-8, no duplicate members, nothing after the value."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise StrictJsonError("starts with a byte-order mark")
    try:
        text = data.decode("utf-8")
        # json.loads refuses a second value ("Extra data") but allows JSON whitespace.
        v = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        _check_strings(v)
    except StrictJsonError:
        raise
    except (UnicodeError, ValueError) as e:
        raise StrictJsonError(str(e)) from e
    return v


# --- event time (§3.3) ---------------------------------------------------------
RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def entry_time_ms(payload):
    """`event.time` of an entry in Unix milliseconds (sub-millisecond truncated)."""
    time = strict_loads(payload)["event"]["time"]
    m = RFC3339.fullmatch(time) if isinstance(time, str) else None
    if not m:
        raise ValueError(f"event time {time!r} is not RFC 3339")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    datetime.datetime(y, mo, d, h, mi, min(s, 59))  # raises on 2026-02-30, 24:00 ...
    frac_ns = int(((m.group(7) or "") + "000000000")[:9])
    if s == 60:  # leap second: stored as the last nanosecond of 23:59:59
        s, frac_ns = 59, 999_999_999
    off = m.group(8)
    off_s = 0 if off in "Zz" else (1 if off[0] == "+" else -1) * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off_s) * 1000 + frac_ns // 1_000_000
    if not 1970 <= y <= 9999 or not 0 <= ms <= 253_402_300_799_999:
        raise ValueError(f"event time {time!r} is outside 1970..9999")
    return ms


# --- dictionaries of version 2 segments (§4.8) -----------------------------------
def load_dictionary(dicts_dir, digest, cache):
    """`ledger/dicts/<hex sha256>.zdict`: bounded, and its SHA-256 must be its name."""
    if digest in cache:
        return cache[digest]
    name = digest.hex()
    path = os.path.join(dicts_dir, name + ".zdict")
    try:
        size = os.path.getsize(path)
        if size == 0 or size > MAX_DICT_LEN:
            raise Invalid("dictionary", f"dictionary {name} has {size} bytes (allowed 1..={MAX_DICT_LEN})")
        with open(path, "rb") as f:
            raw = f.read(MAX_DICT_LEN + 1)
    except FileNotFoundError as e:
        raise Invalid("dictionary", f"dictionary {name} is missing") from e
    if sha256(raw) != digest:
        raise Invalid("dictionary", f"dictionary {name} does not hash to its name")
    cache[digest] = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(raw))
    return cache[digest]


def decode_payload(payload, decompressor, pos):
    """A version 2 payload: exactly one zstd frame of 1..=2^20 bytes of content."""
    try:
        declared = zstandard.frame_content_size(payload)
        if declared == 0 or declared > MAX_ENTRY_LEN:
            raise Invalid("entry_corrupt", f"frame at offset {pos} declares {declared} bytes")
        entry = decompressor.decompress(
            payload, max_output_size=MAX_ENTRY_LEN, allow_extra_data=False
        )
    except zstandard.ZstdError as e:
        raise Invalid("entry_corrupt", f"frame at offset {pos} does not decompress: {e}") from e
    if not 1 <= len(entry) <= MAX_ENTRY_LEN:
        raise Invalid("entry_corrupt", f"frame at offset {pos} holds {len(entry)} bytes")
    return entry


# --- one sealed segment (§4) ---------------------------------------------------
# --- encryption at rest (§4.9) ---------------------------------------------------
def load_kek(path):
    """32 raw bytes, or base64 of 32 bytes (surrounding whitespace allowed)."""
    with open(path, "rb") as f:
        raw = f.read(1025)
    if len(raw) == 32:
        return raw
    key = base64.b64decode(raw.strip(), validate=True)
    if len(key) != 32:
        raise ValueError("KEK is not 32 bytes")
    return key


def kek_id(kek):
    return hashlib.sha256(b"sealtrail kek id v1\n" + kek).digest()[:8]


def segment_cipher(keys_dir, number, kek):
    """Unwraps the data key of segment `number` from ledger/keys/N.key."""
    path = os.path.join(keys_dir, f"{number:012d}.key")
    try:
        with open(path, "rb") as f:
            rec = f.read(93)
    except FileNotFoundError:
        raise Invalid("key", f"segment {number}: key record {path} is missing") from None
    if len(rec) != 92 or rec[:8] != KEY_MAGIC or crc32c(rec[:88]) != struct.unpack_from(">I", rec, 88)[0]:
        raise Invalid("key", f"segment {number}: malformed key record")
    version, reserved, rec_number = struct.unpack_from(">HHQ", rec, 8)
    if version != 1 or reserved != 0 or rec_number != number:
        raise Invalid("key", f"segment {number}: key record is for another segment or version")
    if rec[20:28] != kek_id(kek):
        raise Invalid("key", f"segment {number}: data key is wrapped with another KEK (id {rec[20:28].hex()})")
    try:
        dek = AESGCM(kek).decrypt(rec[28:40], rec[40:88], rec[:28])
    except Exception:  # cryptography raises InvalidTag
        raise Invalid("key", f"segment {number}: data key does not unwrap") from None
    return AESGCM(dek)


def open_frame(stored, number, cipher, pos):
    """A version 3 payload: leaf || nonce || AES-256-GCM(entry) with AAD
    "SEALFRM\0" || number || leaf. Returns (leaf, entry or None)."""
    if len(stored) < FRAME_OVERHEAD + 1:
        raise Invalid("entry_corrupt", f"encrypted frame at offset {pos} is too short")
    leaf = stored[:32]
    if cipher is None:
        return leaf, None
    aad = FRAME_AAD_TAG + struct.pack(">Q", number) + leaf
    try:
        entry = cipher.decrypt(stored[32:44], stored[44:], aad)
    except Exception:
        raise Invalid("entry_corrupt", f"entry at offset {pos} does not authenticate") from None
    if not 1 <= len(entry) <= MAX_ENTRY_LEN or leaf_hash(entry) != leaf:
        raise Invalid("entry_altered", f"entry at offset {pos} does not hash to its stored leaf")
    return leaf, entry


def check_segment(path, number, dicts_dir=None, dict_cache=None, keys_dir=None, kek=None, unchecked=None):
    """Parses and checks one sealed segment file; returns (record bytes, record)."""
    with open(path, "rb") as f:
        data = f.read()
    # Header (§4.1).
    if data[:8] != SEGMENT_MAGIC:
        raise Invalid("header", "bad magic")
    version, olen = struct.unpack_from(">HH", data, 8)
    if version not in SEGMENT_VERSIONS:
        raise Invalid("header", f"unsupported segment version {version}")
    extra = 32 if version == 2 else 0  # the dictionary hash (§4.8)
    if not 1 <= olen <= MAX_ORIGIN_LEN or len(data) < 64 + extra + olen:
        raise Invalid("header", "bad origin length or truncated header")
    hlen = 64 + extra + olen
    (stored_crc,) = struct.unpack_from(">I", data, hlen - 4)
    if crc32c(data[: hlen - 4]) != stored_crc:
        raise Invalid("header", "header checksum mismatch")
    origin = data[12 : 12 + olen].decode("utf-8")
    h_number, h_first = struct.unpack_from(">QQ", data, 12 + olen)
    h_prev = data[28 + olen : 60 + olen]
    decompressor = None
    if version == 2:
        dict_hash = data[60 + olen : 92 + olen]
        if dict_hash == bytes(32):
            decompressor = zstandard.ZstdDecompressor()
        else:
            decompressor = load_dictionary(dicts_dir, dict_hash, dict_cache if dict_cache is not None else {})
    if h_number != number:
        raise Invalid("misplaced", f"file of segment {number} holds segment {h_number}")
    encrypted = version == 3
    cipher = segment_cipher(keys_dir, number, kek) if encrypted and kek is not None else None

    # Trailer and footer (§4.4, §4.5): the trailer points at the seal marker.
    if len(data) < hlen + 16 or data[-8:] != TRAILER_MAGIC:
        raise Invalid("not_sealed", "no trailer")
    (footer_at,) = struct.unpack_from(">Q", data, len(data) - 16)
    if not hlen <= footer_at <= len(data) - 20 - 11:  # room for the smallest footer
        raise Invalid("entry_corrupt", "footer offset out of range")
    body = data[footer_at : len(data) - 20]
    (footer_crc,) = struct.unpack_from(">I", data, len(data) - 20)
    if crc32c(body) != footer_crc:
        raise Invalid("entry_corrupt", "footer checksum mismatch")
    marker, rlen = struct.unpack_from(">IH", body, 0)
    if marker != SEAL_MARKER:
        raise Invalid("entry_corrupt", "seal marker missing")
    record_bytes = body[6 : 6 + rlen]
    rec = parse_record(record_bytes)
    shift, nblocks = struct.unpack_from(">BI", body, 6 + rlen)
    # The high bit says a frame index (one u32 per entry) follows the roots.
    indexed, shift = bool(shift & 0x80), shift & 0x7F
    want_blocks = -(-rec["count"] // BLOCK)
    if shift != BLOCK_SHIFT or nblocks != want_blocks or rec["count"] > MAX_SEGMENT_EVENTS:
        raise Invalid("entry_corrupt", f"block shift {shift} / {nblocks} blocks for {rec['count']} events")
    idx = body[11 + rlen :]
    if len(idx) != nblocks * 40 + (4 * rec["count"] if indexed else 0):
        raise Invalid("entry_corrupt", "block index length mismatch")
    block_offsets = list(struct.unpack_from(f">{nblocks}Q", idx, 0))
    block_roots = [idx[nblocks * 8 + 32 * i : nblocks * 8 + 32 * (i + 1)] for i in range(nblocks)]
    frame_index = list(struct.unpack_from(f">{rec['count']}I", idx, nblocks * 40)) if indexed else None

    # Frames (§4.2): from the header to the seal marker, nothing in between.
    leaves, offsets, times, pos = [], [], [], hlen
    while pos < footer_at:
        if pos + 8 > footer_at:
            raise Invalid("entry_corrupt", f"stray bytes at offset {pos}")
        length, crc = struct.unpack_from(">II", data, pos)
        max_len = MAX_ENTRY_LEN + (FRAME_OVERHEAD if encrypted else 0)
        if not 1 <= length <= max_len or pos + 8 + length > footer_at:
            raise Invalid("entry_corrupt", f"frame length {length} at offset {pos} out of range")
        payload = data[pos + 8 : pos + 8 + length]
        if crc32c(payload) != crc:
            raise Invalid("entry_corrupt", f"frame checksum mismatch at offset {pos}")
        if decompressor is not None:
            payload = decode_payload(payload, decompressor, pos)
        if encrypted:
            leaf, payload = open_frame(payload, number, cipher, pos)
        else:
            leaf = leaf_hash(payload)
        if payload is None:
            unchecked[0] += 1  # no KEK: the stored leaf is all there is
        else:
            try:
                times.append(entry_time_ms(payload))
            except (ValueError, KeyError, TypeError) as e:
                raise Invalid("entry", f"entry at offset {pos} has no readable time: {e}") from e
        leaves.append(leaf)
        offsets.append(pos)
        pos += 8 + length

    # The record against the header and the entries (§5).
    if (rec["origin"], rec["number"], rec["first_index"], rec["prev"]) != (origin, h_number, h_first, h_prev):
        raise Invalid("record", "segment record disagrees with the segment header")
    if rec["count"] != len(leaves):
        raise Invalid("record", f"record counts {rec['count']} events, file holds {len(leaves)}")
    if times and (rec["min_time_ms"], rec["max_time_ms"]) != (min(times), max(times)):
        raise Invalid("record", "first/last event times do not match the entries")
    for b in range(nblocks):
        if mth(leaves[b * BLOCK : (b + 1) * BLOCK]) != block_roots[b]:
            first = h_first + b * BLOCK
            raise Invalid("entry_altered", f"events from {first} do not hash to block root {b}")
    if block_offsets != offsets[::BLOCK]:
        raise Invalid("index", "block offsets do not match the frames")
    if frame_index is not None and frame_index != [o - offsets[i - i % BLOCK] for i, o in enumerate(offsets)]:
        raise Invalid("index", "frame index does not match the frames")
    # Blocks are complete aligned subtrees, so both roots must agree (§4.6).
    if mth(block_roots) != rec["root"] or mth(leaves) != rec["root"]:
        raise Invalid("segment_root", "entries do not hash to the record's segment root")
    return record_bytes, rec


# --- the whole data directory (§2, §9) -----------------------------------------
def verify_data_dir(data_dir, vkey, kek=None, witnesses=(), quorum=0):
    errors, segments, events, unchecked = [], 0, 0, [0]
    warnings = []

    def error(kind, detail, segment=None):
        errors.append({"segment": segment, "kind": kind, "detail": detail})

    ledger = os.path.join(data_dir, "ledger")
    # The key history (§14.3), followed from the trusted key; without one the
    # trusted key signs every checkpoint.
    chain = KeyChain(vkey)
    try:
        with open(os.path.join(ledger, "key-history.json"), "rb") as f:
            chain = KeyChain(vkey, parse_history_file(f.read(MAX_KEY_HISTORY_LEN + 1)))
    except FileNotFoundError:
        pass
    except Invalid as e:
        error(e.kind, e.detail)
    checkpoint = None
    try:
        with open(os.path.join(ledger, "checkpoint"), encoding="utf-8") as f:
            checkpoint = chain.open_checkpoint(f.read())
    except FileNotFoundError:
        error("no_checkpoint", "no ledger/checkpoint file")
    except Invalid as e:
        error(e.kind, e.detail)
    witnessed = None
    if witnesses:
        try:
            witnessed = open_witnessed(ledger, chain, witnesses, quorum)
        except Invalid as e:
            error(e.kind, e.detail)

    seg_dir = os.path.join(ledger, "segments")
    names = sorted(n for n in os.listdir(seg_dir) if SEGMENT_NAME.match(n)) if os.path.isdir(seg_dir) else []
    numbers = [int(SEGMENT_NAME.match(n).group(1)) for n in names]
    log_leaves, records, prev, broken = [], [], None, False
    dicts_dir, dict_cache = os.path.join(ledger, "dicts"), {}
    for expected, (name, number) in enumerate(zip(names, numbers)):
        if number != expected:
            error("missing_segment", f"segment {expected} is missing", expected)
            broken = True
            break  # the chain cannot continue past a gap
        try:
            record_bytes, rec = check_segment(
                os.path.join(seg_dir, name), number, dicts_dir, dict_cache, os.path.join(ledger, "keys"), kek, unchecked
            )
            if rec["origin"] != vkey[0]:
                raise Invalid("origin", f"segment belongs to log {rec['origin']!r}")
            want_first = prev["first_index"] + prev["count"] if prev else 0
            want_prev = sha256(prev["bytes"]) if prev else bytes(32)
            if rec["first_index"] != want_first:
                raise Invalid("sequence", f"starts at event {rec['first_index']}, expected {want_first}")
            if rec["prev"] != want_prev:
                raise Invalid("chain", "prev is not the SHA-256 of the previous record")
        except Invalid as e:
            error(e.kind, e.detail, number)
            broken = True  # later records chain to this one and cannot be trusted
            break
        except (struct.error, UnicodeDecodeError, OverflowError) as e:
            error("format", f"truncated or malformed: {e}", number)
            broken = True
            break
        prev = dict(rec, bytes=record_bytes)
        log_leaves.append(leaf_hash(record_bytes))
        records.append(rec)
        segments += 1

    # Only events a matching signed checkpoint covers are verified (§9).
    uncovered = len(log_leaves)
    if checkpoint is not None and not broken:
        _, size, root = checkpoint
        if size > len(log_leaves):
            error("truncated", f"checkpoint covers {size} segments, {len(log_leaves)} verified")
        elif mth(log_leaves[:size]) != root:
            error("checkpoint_mismatch", f"first {size} segment records do not hash to the signed root")
        else:
            events = sum(r["count"] for r in records[:size])
            uncovered = len(log_leaves) - size
            if uncovered > CRASH_WINDOW_SEGMENTS:
                error("unsigned_tail", f"{uncovered} sealed segments lie beyond the checkpoint")
            elif uncovered:
                warnings.append(f"{uncovered} sealed segment newer than the checkpoint (crash window): not counted")
    # The handovers: the old key's last checkpoint pins the first S segments,
    # and segment S-1 holds the transition entry alone (§14.4 step 5).
    for h in [] if broken else chain.handoffs:
        size, index = h["size"], h["index"]
        if size > len(log_leaves) or mth(log_leaves[:size]) != h["root"]:
            error("key_transition", f"the first {size} segments do not hash to the old key's last checkpoint")
            continue
        rec = records[size - 1]
        if rec["first_index"] != index or rec["count"] != 1 or rec["root"] != leaf_hash(h["entry"]):
            error("key_transition_entry", f"segment {size - 1} does not hold exactly transition entry {index}")
    if witnessed is not None and not broken:
        size, root, _ = witnessed
        if size > len(log_leaves) or mth(log_leaves[:size]) != root:
            error("witness_mismatch", f"the first {size} segments do not hash to the cosigned root")
    report = {"ok": not errors, "segments": segments, "events": events, "uncovered_segments": uncovered,
              "payloads_unchecked": unchecked[0], "errors": errors, "warnings": warnings}
    if witnessed is not None:
        report["witnessed"] = {"size": witnessed[0], "root": base64.b64encode(witnessed[1]).decode(),
                               "cosigners": witnessed[2]}
    return report


# --- proofs (§7) ---------------------------------------------------------------
def decode_path(hashes, what):
    if not isinstance(hashes, list) or len(hashes) > 64:
        raise Invalid("format", f"{what} must be a list of at most 64 hashes")
    out = [b64decode(h, what) for h in hashes]
    if any(len(h) != 32 for h in out):
        raise Invalid("format", f"{what} holds a hash that is not 32 bytes")
    return out


def exact_fields(obj, names, what, optional=()):
    """Proof objects have exactly these members: none missing, none unknown (§7)."""
    if not isinstance(obj, dict) or not set(names) <= set(obj) <= set(names) | set(optional):
        raise Invalid("format", f"{what} must have exactly the members {sorted(names)}")


def proof_chain(p, vkey):
    """A proof's optional `key_history` (§14.4), followed from the trusted key."""
    if "key_history" not in p:
        return KeyChain(vkey)
    return KeyChain(vkey, parse_history_records(p["key_history"]))


def uints(*values):
    """Sizes and indices are JSON integers: `3.0` and `true` are not (§7)."""
    if any(type(v) is not int or v < 0 for v in values):
        raise Invalid("format", "indices and sizes must be non-negative JSON integers")


def verify_inclusion_proof(p, chain, optional=("key_history",)):
    exact_fields(p, ["format", "index", "entry", "segment", "log", "checkpoint"], "proof", optional)
    exact_fields(p["segment"], ["record", "leaf_index", "path"], "segment")
    exact_fields(p["log"], ["leaf_index", "tree_size", "path"], "log")
    uints(p["index"], p["segment"]["leaf_index"], p["log"]["leaf_index"], p["log"]["tree_size"])
    origin, size, root = chain.open_checkpoint(p["checkpoint"])
    record_bytes = b64decode(p["segment"]["record"], "segment.record")
    rec = parse_record(record_bytes)
    index = p["index"]
    if rec["origin"] != origin:
        raise Invalid("proof", "segment record belongs to another log")
    if not rec["first_index"] <= index < rec["first_index"] + rec["count"]:
        raise Invalid("proof", f"event {index} is not in segment {rec['number']}")
    if p["segment"]["leaf_index"] != index - rec["first_index"]:
        raise Invalid("proof", "segment.leaf_index is not index - first_index")
    if p["log"]["leaf_index"] != rec["number"] or p["log"]["tree_size"] != size:
        raise Invalid("proof", "log.leaf_index / log.tree_size disagree with record / checkpoint")
    entry = p["entry"].encode("utf-8")
    seg_root = root_from_inclusion(
        index - rec["first_index"], rec["count"], leaf_hash(entry), decode_path(p["segment"]["path"], "segment.path")
    )
    if seg_root != rec["root"]:
        raise Invalid("proof", "entry does not lead to the segment root in the record")
    log_root = root_from_inclusion(rec["number"], size, leaf_hash(record_bytes), decode_path(p["log"]["path"], "log.path"))
    if log_root != root:
        raise Invalid("proof", "segment record does not lead to the checkpoint root")
    return {"ok": True, "kind": "inclusion", "index": index, "checkpoint_size": size}


def verify_consistency_proof(p, chain):
    exact_fields(p, ["format", "old_size", "old_root", "new_size", "new_root", "path", "checkpoint"], "proof",
                 ["key_history"])
    uints(p["old_size"], p["new_size"])
    _, size, root = chain.open_checkpoint(p["checkpoint"])
    if p["new_size"] != size or b64decode(p["new_root"], "new_root") != root:
        raise Invalid("proof", "new_size / new_root disagree with the checkpoint")
    old_root = b64decode(p["old_root"], "old_root")
    verify_consistency(p["old_size"], size, decode_path(p["path"], "path"), old_root, root)
    return {"ok": True, "kind": "consistency", "old_size": p["old_size"], "new_size": size}


def verify_proof_file(path, vkey):
    with open(path, "rb") as f:
        data = f.read()
    try:
        p = strict_loads(data)
    except StrictJsonError as e:
        return {"ok": False, "errors": [{"kind": "json", "detail": f"the proof file {e}"}]}
    try:
        kind = {INCLUSION_FORMAT: verify_inclusion_proof, CONSISTENCY_FORMAT: verify_consistency_proof}
        if p.get("format") not in kind:
            raise Invalid("format", f"unknown proof format {p.get('format')!r}")
        return kind[p["format"]](p, proof_chain(p, vkey))
    except Invalid as e:
        return {"ok": False, "errors": [{"kind": e.kind, "detail": e.detail}]}
    except (KeyError, TypeError, AttributeError, UnicodeError) as e:
        return {"ok": False, "errors": [{"kind": "format", "detail": f"malformed proof: {e!r}"}]}


# --- evidence bundles (§11) ----------------------------------------------------
BUNDLE_MEMBERS = {  # name: largest size accepted (§11.1)
    "README.txt": 64 << 10,
    "signing.vkey": 1 << 10,
    "checkpoint": 1 << 20,
    "manifest": 64 << 10,
    "events.ndjson": 1 << 30,
}
OPTIONAL_MEMBERS = {"key-history.json": MAX_KEY_HISTORY_LEN}  # §14.4
SIGNED_MEMBERS = ("signing.vkey", "checkpoint", "manifest")
MAX_TAR_PADDING = 64 << 10
MANIFEST_KEYS = ["origin", "query", "from", "to", "requested-by", "created",
                 "checkpoint-size", "checkpoint-root", "events", "events-sha256"]


def tar_number(field, what):
    digits = field.rstrip(b"\0 ").lstrip(b" ")
    if not re.fullmatch(rb"[0-7]*", digits):
        raise Invalid("archive", f"{what} is not an octal number")
    return int(digits or b"0", 8)


def read_tar(data):
    """Members (name, bytes) of a ustar archive, strictly (§11.1)."""
    members, pos = [], 0
    while pos < len(data):
        if pos + 512 > len(data):
            raise Invalid("truncated", "the archive ends inside a header")
        h = data[pos : pos + 512]
        if h == bytes(512):
            rest = data[pos + 512 :]
            if len(rest) > MAX_TAR_PADDING or any(rest):
                raise Invalid("trailing_data", "data after the end-of-archive block")
            break
        if tar_number(h[148:156], "checksum") != sum(h[:148]) + 8 * 32 + sum(h[156:]):
            raise Invalid("archive", "bad header checksum")
        name = h[:100].split(b"\0", 1)[0]
        if h[257:262] == b"ustar" and h[345] != 0:
            name = h[345:500].split(b"\0", 1)[0] + b"/" + name
        name = name.decode("utf-8", "replace")
        limits = BUNDLE_MEMBERS | OPTIONAL_MEMBERS
        if name not in limits:
            raise Invalid("unexpected_member", f"member {name!r} is not part of a bundle")
        if any(n == name for n, _ in members):
            raise Invalid("duplicate_member", name)
        if members and members[-1][0] == "events.ndjson":
            raise Invalid("member_order", f"{name} after events.ndjson")
        if name in OPTIONAL_MEMBERS and any(n in SIGNED_MEMBERS for n, _ in members):
            raise Invalid("member_order", f"{name} after signing.vkey, checkpoint or manifest")
        if h[156:157] not in (b"0", b"\0"):
            raise Invalid("member_type", f"{name} is not a regular file")
        size = tar_number(h[124:136], "size")
        if size > limits[name]:
            raise Invalid("member_too_large", name)
        if pos + 512 + size > len(data):
            raise Invalid("truncated", f"{name} is cut short")
        members.append((name, data[pos + 512 : pos + 512 + size]))
        pos += 512 + (size + 511) // 512 * 512
    missing = [n for n in BUNDLE_MEMBERS if n not in dict(members)]
    if missing:
        raise Invalid("missing_member", ", ".join(missing))
    return dict(members)


def manifest_string(s):
    """A STRING of §11.2: JSON escapes, plus \\u00xx for U+007F..U+009F."""
    out = json.dumps(s, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if 0x7F <= ord(c) <= 0x9F else c for c in out)


def parse_manifest(text):
    lines = text.split("\n")
    if len(lines) != 12 or lines[-1] != "" or lines[0] != "sealtrail evidence bundle v1":
        raise Invalid("manifest_format", "not 11 lines of a v1 manifest")
    values = {}
    for key, line in zip(MANIFEST_KEYS, lines[1:11]):
        if not line.startswith(key + " "):
            raise Invalid("manifest_format", f"want `{key} <value>`")
        values[key] = line[len(key) + 1 :]
    m = {"origin": values["origin"]}
    try:
        for key in ("query", "from", "to", "requested-by", "created"):
            v = values[key]
            m[key] = None if v == "null" and key not in ("query", "created") else strict_loads(v.encode())
            if m[key] is not None and not isinstance(m[key], str):
                raise Invalid("manifest_format", f"{key} is not a string")
    except StrictJsonError as e:
        raise Invalid("manifest_format", str(e)) from e
    for key in ("checkpoint-size", "events"):
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", values[key]):
            raise Invalid("manifest_format", f"{key} is not a decimal")
        m[key] = int(values[key])
    m["checkpoint-root"] = b64decode(values["checkpoint-root"], "checkpoint-root")
    if not re.fullmatch(r"[0-9a-f]{64}", values["events-sha256"]):
        raise Invalid("manifest_format", "events-sha256 is not 64 lower-case hex digits")
    m["events-sha256"] = bytes.fromhex(values["events-sha256"])
    canonical = ["sealtrail evidence bundle v1", "origin " + m["origin"]] + [
        f"{k} " + ("null" if m[k] is None else manifest_string(m[k])) for k in ("query", "from", "to", "requested-by", "created")
    ] + [
        f"checkpoint-size {m['checkpoint-size']}",
        "checkpoint-root " + base64.b64encode(m["checkpoint-root"]).decode(),
        f"events {m['events']}",
        "events-sha256 " + m["events-sha256"].hex(),
    ]
    if "\n".join(canonical) + "\n" != text:
        raise Invalid("manifest_format", "not in canonical form")
    limits = {"query": 4096, "requested-by": 256, "from": 64, "to": 64, "created": 64}
    for key, limit in limits.items():
        v = m[key]
        if v is None:
            continue
        if len(v.encode()) > limit:
            raise Invalid("manifest_format", f"{key} is longer than {limit} bytes")
        if key in ("from", "to", "created") and not RFC3339.fullmatch(v):
            raise Invalid("manifest_format", f"{key} is not an RFC 3339 time")
    return m


def canonical_proof_line(p):
    ordered = {
        "format": p["format"], "index": p["index"], "entry": p["entry"],
        "segment": {k: p["segment"][k] for k in ("record", "leaf_index", "path")},
        "log": {k: p["log"][k] for k in ("leaf_index", "tree_size", "path")},
        "checkpoint": p["checkpoint"],
    }
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode()


def verify_bundle_file(path, vkey, vkey_path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        members = read_tar(data)
        chain = KeyChain(vkey)
        if "key-history.json" in members:
            chain = KeyChain(vkey, parse_history_file(members["key-history.json"]))
        # signing.vkey is the newest key of the history (the trusted key itself
        # when there is none); it signs the manifest.
        if members["signing.vkey"] != chain.current()[3].encode() + b"\n":
            raise Invalid("vkey", "signing.vkey is not the key verified with (or the history's newest)")
        checkpoint = members["checkpoint"].decode("utf-8")
        origin, size, root = chain.open_checkpoint(checkpoint)
        m = parse_manifest(open_note(members["manifest"].decode("utf-8"), chain.current(), "manifest_signature"))
        if m["origin"] != vkey[0]:
            raise Invalid("manifest_origin", m["origin"])
        if (m["checkpoint-size"], m["checkpoint-root"]) != (size, root):
            raise Invalid("checkpoint_mismatch", "manifest names another checkpoint")
        digest, previous, count = hashlib.sha256(), None, 0
        events = members["events.ndjson"]
        if events and not events.endswith(b"\n"):
            raise Invalid("event_line", "does not end with a newline")
        for line in events.split(b"\n")[:-1]:
            count += 1
            try:
                p = strict_loads(line)
                # No `key_history` here: the bundle carries it once (§14.4).
                exact_fields(p, ["format", "index", "entry", "segment", "log", "checkpoint"], "proof")
                if canonical_proof_line(p) != line:
                    raise Invalid("event_line", f"line {count} is not canonical")
            except (StrictJsonError, KeyError, TypeError, Invalid) as e:
                raise Invalid("event_line", f"line {count}: {e}") from e
            if p["checkpoint"] != checkpoint:
                raise Invalid("event_checkpoint", f"line {count}")
            try:
                verify_inclusion_proof(p, chain, optional=())
            except Invalid as e:
                raise Invalid("event_proof", f"line {count}: {e.detail}") from e
            if previous is not None and p["index"] <= previous:
                raise Invalid("event_order", f"line {count}")
            previous = p["index"]
            digest.update(struct.pack(">Q", p["index"]) + leaf_hash(p["entry"].encode("utf-8")))
        if count > 100_000:
            raise Invalid("too_many_events", str(count))
        if count != m["events"]:
            raise Invalid("event_count", f"{count} lines, manifest says {m['events']}")
        if digest.digest() != m["events-sha256"]:
            raise Invalid("event_digest", "events do not match events-sha256")
    except Invalid as e:
        return {"ok": False, "errors": [{"kind": e.kind, "detail": e.detail}]}
    except UnicodeError as e:
        return {"ok": False, "errors": [{"kind": "format", "detail": str(e)}]}
    return {"ok": True, "events": count, "checkpoint_size": size}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vkey", required=True)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--data")
    what.add_argument("--proof")
    what.add_argument("--bundle")
    ap.add_argument("--kek", help="key-encryption key file: check encrypted entries too (§4.9)")
    ap.add_argument("--witness-vkey", action="append", default=[], help="a trusted witness's vkey (§13.4)")
    ap.add_argument("--witness-quorum", type=int, help="cosigners required (default: all given)")
    args = ap.parse_args()
    try:
        vkey = load_vkey(args.vkey)
    except (Invalid, OSError, ValueError) as e:
        print(json.dumps({"ok": False, "errors": [{"kind": "vkey", "detail": str(e)}]}))
        return 2
    try:
        kek = load_kek(args.kek) if args.kek else None
    except (OSError, ValueError) as e:
        print(json.dumps({"ok": False, "errors": [{"kind": "kek", "detail": str(e)}]}))
        return 2
    try:
        witnesses = [load_vkey(w, alg=4) for w in args.witness_vkey]
        quorum = len(witnesses) if args.witness_quorum is None else args.witness_quorum
        if witnesses and not 1 <= quorum <= len(witnesses) or len({w[0] for w in witnesses}) != len(witnesses):
            raise ValueError("--witness-quorum must be 1..number of witness keys, witness names distinct")
    except (Invalid, OSError, ValueError) as e:
        print(json.dumps({"ok": False, "errors": [{"kind": "usage", "detail": str(e)}]}))
        return 2
    if args.bundle:
        report = verify_bundle_file(args.bundle, vkey, args.vkey)
    elif args.proof:
        report = verify_proof_file(args.proof, vkey)
    else:
        report = verify_data_dir(args.data, vkey, kek, witnesses, quorum)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
