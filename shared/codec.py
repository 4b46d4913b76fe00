"""The key codec: a bijection between numbers in [0, 62^L) and L-character base62 keys.

Alphabet `0-9A-Za-z`, fixed width, zero-padded: with L=7, 36 -> `000000a`. A number outside
the keyspace is refused with `KeyspaceError`; nothing is ever wrapped with a modulo.
`encode_range` encodes a whole reserved range at once (vectorised with numpy), which is what
keeps the refiller fast.
"""

from __future__ import annotations

import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(ALPHABET)
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_DIGIT_OF = {char: value for value, char in enumerate(ALPHABET)}
# numpy works on uint64; 62^10 < 2^64 < 62^11, so longer keys take the pure-Python path.
_MAX_VECTOR_LENGTH = 10


class KeyspaceError(ValueError):
    """A number or key lies outside the keyspace of the configured key length."""


class KeyCodec:
    """Sequential base62 codec for keys of exactly `length` characters."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError("key length must be at least 1")
        self.length = length
        self.keyspace_size: int = BASE**length

    def encode(self, number: int) -> str:
        """The key of `number`; raises KeyspaceError outside [0, 62^length)."""
        self._check_number(number)
        chars = []
        for _ in range(self.length):
            number, digit = divmod(number, BASE)
            chars.append(ALPHABET[digit])
        return "".join(reversed(chars))

    def decode(self, key: str) -> int:
        """The number of `key`; raises KeyspaceError for a wrong width or character."""
        if len(key) != self.length:
            raise KeyspaceError(f"key {key!r} is not {self.length} characters long")
        number = 0
        for char in key:
            digit = _DIGIT_OF.get(char)
            if digit is None:
                raise KeyspaceError(f"key {key!r} has a character outside 0-9A-Za-z")
            number = number * BASE + digit
        return number

    def encode_range(self, start: int, end: int) -> list[bytes]:
        """The keys of every number in [start, end), in order, as ASCII bytes."""
        if start > end:
            raise ValueError(f"empty range [{start}, {end})")
        if start == end:
            return []
        self._check_number(start)
        self._check_number(end - 1)
        if self.length > _MAX_VECTOR_LENGTH:
            return [self.encode(number).encode() for number in range(start, end)]
        numbers = np.arange(start, end, dtype=np.uint64)
        digits = np.empty((end - start, self.length), dtype=np.uint8)
        for position in range(self.length - 1, -1, -1):
            digits[:, position] = numbers % BASE
            numbers //= BASE
        keys: list[bytes] = _ALPHABET_BYTES[digits].view(f"S{self.length}").ravel().tolist()
        return keys

    def _check_number(self, number: int) -> None:
        if not 0 <= number < self.keyspace_size:
            raise KeyspaceError(
                f"number {number} is outside the keyspace [0, 62^{self.length}) of "
                f"{self.length}-character keys"
            )


def mapping_identity(codec: KeyCodec) -> dict[str, str]:
    """What the counter store pins at first use: the settings that define the mapping."""
    return {"KEY_LENGTH": str(codec.length), "KEY_ORDER": "sequential"}
