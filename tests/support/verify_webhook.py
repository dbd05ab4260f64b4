#!/usr/bin/env python3
"""Checks a sealtrail webhook signature, as a receiver would.

The function `verify` is the snippet README.md ("Configuring email and
webhooks") shows; tests/notify.rs runs this file against real deliveries.
Usage: verify_webhook.py SECRET TIMESTAMP SIGNATURE < body; exit 0 if valid.
"""
import hashlib
import hmac
import sys
import time


def verify(secret: bytes, timestamp: str, body: bytes, signature: str,
           window: int = 300) -> bool:
    """True if `signature` (X-Sealtrail-Signature) signs `timestamp`
    (X-Sealtrail-Timestamp) and the raw request `body`, and the timestamp is
    within `window` seconds of now."""
    try:
        if abs(time.time() - int(timestamp)) > window:
            return False
    except ValueError:
        return False
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + expected, signature)


if __name__ == "__main__":
    secret, timestamp, signature = sys.argv[1:4]
    sys.exit(0 if verify(secret.encode(), timestamp, sys.stdin.buffer.read(), signature) else 1)
