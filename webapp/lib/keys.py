"""API key format: ``pod_`` + 32 random base62 characters + a 6-character checksum.

The fixed prefix lets secret scanners and people recognise a Podium key in
text; the CRC32 checksum lets Podium reject a mistyped or truncated key
without a database lookup and lets scanners tell a real key from a look-alike
(the same design as GitHub's token format). Keys carry 190 bits of entropy, so
a single SHA-256 is the right storage hash: a slow password hash would add
latency to every API call without adding any security.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

PREFIX = "pod_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 32
_CHECK_LEN = 6
KEY_LEN = len(PREFIX) + _BODY_LEN + _CHECK_LEN


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate() -> str:
    """Return a new random key. Show it once; store only :func:`digest`."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return f"{PREFIX}{body}{_checksum(body)}"


def is_well_formed(key: str) -> bool:
    """True when ``key`` has Podium's shape and a valid checksum."""
    if len(key) != KEY_LEN or not key.startswith(PREFIX):
        return False
    rest = key[len(PREFIX) :]
    if any(ch not in _ALPHABET for ch in rest):
        return False
    body, check = rest[:_BODY_LEN], rest[_BODY_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The part shown in lists so people can tell their keys apart."""
    return key[: len(PREFIX) + 6]
