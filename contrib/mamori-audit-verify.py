#!/usr/bin/env python3
"""Verify a copy of Mamori's audit trail without Mamori: Python's standard library, plus
python3-cryptography (Debian) for the Ed25519 checkpoint signatures.

    mamori-audit-verify.py COPY.sqlite|TRAIL.jsonl [AUDIT.pub] [--witness WITNESS]

It reads a copy of the database, or a trail export (`mamori audit export --format trail`,
`mamorid export-audit`): JSON lines, a header ("format": "mamori-audit-trail-v1", perhaps the
"public_key"), then the checkpoints, then the entries as stored. Without AUDIT.pub the
signatures are not checked: a key inside the export proves nothing, since whoever edits the file
can re-sign it and name their own.

An independent second implementation for auditors, written from docs/operations.md:
each entry's hash is SHA-256 over the previous entry's hash followed by the entry as canonical
JSON (json.dumps with sort_keys, no spaces, ensure_ascii=False; `detail` stored in that form);
the first entry links to 32 zero bytes, or, in a pruned trail, to the head hash of the signed
checkpoint just before it. A checkpoint signs
"mamori-audit-checkpoint-v2\\n<seq>\\n<head hash hex>\\n<time in ms>\\n<previous hex>" with Ed25519, where
<previous> is SHA-256 over the previous checkpoint's signed message and signature (32 zero bytes
for the first); checkpoints of the first format ("-v1", no previous) name none. The witness is
the newest checkpoint kept outside the database as one JSON object; a trail shorter than it was
cut off at its end.

Exit status: 0 when everything holds, 1 when anything is wrong (each problem printed), 2 on
unusable input.
"""

import argparse
import base64
import hashlib
import json
import sqlite3
import sys


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fail(message):
    print("mamori-audit-verify: " + message, file=sys.stderr)
    sys.exit(2)


def load_key(path):
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read()
    except (OSError, ValueError) as error:
        fail("%s does not hold a base64 Ed25519 public key: %s" % (path, error))
    return key_from_text(text, path)


def message(seq, head, millis, previous):
    if previous is None:
        return ("mamori-audit-checkpoint-v1\n%d\n%s\n%d" % (seq, head.hex(), millis)).encode()
    return ("mamori-audit-checkpoint-v2\n%d\n%s\n%d\n%s" % (seq, head.hex(), millis, previous.hex())).encode()


def signature_holds(key, seq, head, millis, previous, signature):
    from cryptography.exceptions import InvalidSignature
    try:
        key.verify(signature, message(seq, head, millis, previous))
        return True
    except InvalidSignature:
        return False


def key_from_text(text, source):
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        fail("checking signatures needs python3-cryptography (apt-get install python3-cryptography)")
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as error:
        fail("%s does not hold a base64 Ed25519 public key: %s" % (source, error))


def is_export(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(1) == b"{"
    except OSError as error:
        fail("%s cannot be read: %s" % (path, error))


def read_database(path):
    """Checkpoints and entries, as tuples, from a copy of the database."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        columns = {row[1] for row in db.execute("PRAGMA table_info(checkpoints)")}
        chained = "previous" in columns
        checkpoints = db.execute(
            "SELECT audit_seq, head_hash, time, %s, signature FROM checkpoints ORDER BY id" % ("previous" if chained else "NULL")
        ).fetchall()
        entries = db.execute(
            "SELECT seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash "
            "FROM audit ORDER BY seq"
        ).fetchall()
    except sqlite3.Error as error:
        fail("%s cannot be read: %s" % (path, error))
    return checkpoints, entries


def unique_keys(pairs):
    """An object from its pairs, refusing a key given twice: readers disagree on which one counts,
    so a line with one could show a person one value and hash another."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError("the key %r appears twice" % key)
        seen[key] = value
    return seen


def read_export(path):
    """Checkpoints and entries, in the same tuples as read_database, and the header's key."""
    checkpoints, entries, key, header = [], [], None, False
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line, object_pairs_hook=unique_keys)
                except ValueError as error:
                    fail("%s:%d: %s" % (path, number, error))
                kind = item.get("type")
                if not header:
                    if kind != "header" or item.get("format") != "mamori-audit-trail-v1":
                        fail("%s:1: not an audit trail export" % path)
                    key, header = item.get("public_key"), True
                elif kind == "checkpoint":
                    if entries:
                        fail("%s:%d: a checkpoint after the entries" % (path, number))
                    previous = bytes.fromhex(item["previous"]) if item.get("previous") is not None else None
                    checkpoints.append((int(item["sequence"]), bytes.fromhex(item["head_hash"]), int(item["time_ms"]), previous,
                                        base64.b64decode(item["signature"], validate=True)))
                elif kind == "entry":
                    entries.append((int(item["seq"]), int(item["time_ms"]), item["actor_uid"], item["actor"], item["event"],
                                    item["target"], item["outcome"], item["detail"], item["terminal"], item["zone"],
                                    item["policy_revision"], bytes.fromhex(item["prev_hash"]), bytes.fromhex(item["hash"])))
                else:
                    fail("%s:%d: a line of type %r" % (path, number, kind))
    except (OSError, ValueError, KeyError, TypeError) as error:
        fail("%s cannot be read as an export: %s" % (path, error))
    if not header:
        fail("%s:1: not an audit trail export" % path)
    return checkpoints, entries, key


def load_witness(path):
    try:
        with open(path, encoding="utf-8") as handle:
            item = json.load(handle)
        if item.get("format") != "mamori-audit-witness-v1":
            raise ValueError("not a Mamori audit witness")
        previous = bytes.fromhex(item["previous"]) if "previous" in item else None
        return (int(item["sequence"]), bytes.fromhex(item["head_hash"]), int(item["time_ms"]), previous,
                base64.b64decode(item["signature"], validate=True))
    except (OSError, ValueError, KeyError) as error:
        fail("%s is not a readable witness: %s" % (path, error))


def main():
    parser = argparse.ArgumentParser(description="Verify a copy of Mamori's audit trail.")
    parser.add_argument("database")
    parser.add_argument("public_key", nargs="?")
    parser.add_argument("--witness")
    arguments = parser.parse_args()
    exported_key = None
    if is_export(arguments.database):
        checkpoints, entries, exported_key = read_export(arguments.database)
    else:
        checkpoints, entries = read_database(arguments.database)
    key = load_key(arguments.public_key) if arguments.public_key else None
    # Never the key inside an export: whoever edits the file can re-sign its checkpoints and put
    # their own key in the header, so it would prove nothing.
    if key is None and exported_key is not None:
        print("note: the signatures are not checked without AUDIT.pub; the key inside the export proves nothing.")
    witness = load_witness(arguments.witness) if arguments.witness else None

    problems = []
    signed = {}
    earlier = None
    for seq, head, millis, previous, signature in checkpoints:
        if earlier is not None and previous is not None and previous != hashlib.sha256(earlier).digest():
            problems.append("the checkpoint at entry %d does not name the checkpoint stored before it" % seq)
        earlier = message(seq, head, millis, previous) + signature
        if key is not None and not signature_holds(key, seq, head, millis, previous, signature):
            problems.append("the checkpoint at entry %d is not signed by this key" % seq)
            continue
        signed[seq] = head
    if witness is not None and key is not None and not signature_holds(key, *witness):
        problems.append("the witness's checkpoint at entry %d is not signed by this key" % witness[0])
        witness = None

    previous = None
    first = None
    count = 0
    hashes = {}
    for seq, millis, uid, actor, event, target, outcome, detail, terminal, zone, revision, prev_hash, stored in entries:
        hashes.setdefault(seq, stored)
        count += 1
        if previous is None:
            first = seq
            link = bytes(32)
            if seq > 1:
                if seq - 1 in signed:
                    link = signed[seq - 1]
                else:
                    problems.append("the trail starts at entry %d with no checkpoint anchoring entries 1-%d" % (seq, seq - 1))
                    link = prev_hash
        else:
            if seq > previous[0] + 1:
                problems.append("entries %d-%d are missing" % (previous[0] + 1, seq - 1))
            link = previous[1]
        if prev_hash != link:
            problems.append("entry %d does not link to the entry before it" % seq)
        try:
            detail_object = json.loads(detail)
        except ValueError:
            detail_object = None
        entry = {
            "time": millis, "actor_uid": uid, "actor": actor, "event": event, "target": target, "outcome": outcome,
            "detail": detail_object, "terminal": terminal, "zone": zone, "policy_revision": revision,
        }
        text = canonical(entry)
        if detail_object is None or canonical(detail_object) != detail or hashlib.sha256(prev_hash + text.encode()).digest() != stored:
            problems.append("entry %d was altered" % seq)
        if seq in signed and signed[seq] != stored:
            problems.append("the checkpoint at entry %d does not match the trail" % seq)
        previous = (seq, stored)

    last = previous[0] if previous else 0
    present = set(hashes)
    for seq in sorted(signed):
        if seq > last:
            problems.append("the trail ends at entry %d, but a checkpoint signed entry %d" % (last, seq))
        elif first is not None and seq >= first and seq not in present:
            problems.append("the checkpoint at entry %d names an entry that is gone" % seq)

    if witness is not None:
        seq, head = witness[0], witness[1]
        if seq > last:
            problems.append("the trail ends at entry %d, but the witness outside the database signed entry %d" % (last, seq))
        elif first is not None and seq >= first:
            if hashes.get(seq) != head:
                problems.append("the witness's checkpoint at entry %d does not match the trail" % seq)

    for problem in problems:
        print("BROKEN: " + problem)
    if problems:
        print("%d problem(s) in %d entries." % (len(problems), count))
        return 1
    pruned = " (entries 1-%d pruned)" % (first - 1) if first and first > 1 else ""
    checked = "signed and checked" if key is not None else "compared, signatures not checked"
    print("holds: %d entries%s; %d checkpoint(s) %s." % (count, pruned, len(checkpoints), checked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
