"""The key codec: a bijection between numbers in [0, 62^L) and L-character base62 keys.

Alphabet `0-9A-Za-z`, fixed width, zero-padded. With KEY_ORDER=sequential the number is
written as it is (L=7: 36 -> `000000a`); with KEY_ORDER=scrambled it first goes through a
keyed permutation of [0, 62^L) (shared/scramble.py), so consecutive numbers give unrelated
keys. Either way a number outside the keyspace is refused with `KeyspaceError`; nothing is
ever wrapped with a modulo. `encode_range` encodes a whole reserved range at once
(vectorised with numpy), which is what keeps the refiller fast.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from shared.scramble import KeyedPermutation
from shared.settings import DEFAULT_KEY_SECRET, Settings

log = logging.getLogger("mini_forge.codec")

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(ALPHABET)
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_DIGIT_OF = {char: value for value, char in enumerate(ALPHABET)}
# numpy works on uint64; 62^10 < 2^64 < 62^11, so longer keys take the pure-Python path.
_MAX_VECTOR_LENGTH = 10


class KeyspaceError(ValueError):
    """A number or key lies outside the keyspace of the configured key length."""


class KeyCodec:
    """Base62 codec for keys of exactly `length` characters, sequential or scrambled.

    Without a permutation, numbers map to keys in order; with one, each number is permuted
    within [0, 62^length) before it is written (and after it is read back).
    """

    def __init__(self, length: int, permutation: KeyedPermutation | None = None) -> None:
        if length < 1:
            raise ValueError("key length must be at least 1")
        self.length = length
        self.keyspace_size: int = BASE**length
        if permutation is not None and permutation.size != self.keyspace_size:
            raise ValueError("the permutation must cover exactly the keyspace")
        self.permutation = permutation

    @property
    def order(self) -> str:
        """The KEY_ORDER this codec implements: `sequential` or `scrambled`."""
        return "sequential" if self.permutation is None else "scrambled"

    def encode(self, number: int) -> str:
        """The key of `number`; raises KeyspaceError outside [0, 62^length)."""
        self._check_number(number)
        if self.permutation is not None:
            number = self.permutation.forward(number)
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
        return number if self.permutation is None else self.permutation.backward(number)

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
        numbers: NDArray[np.uint64] = np.arange(start, end, dtype=np.uint64)
        if self.permutation is not None:
            numbers = self.permutation.forward_array(numbers)
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


def make_codec(settings: Settings) -> KeyCodec:
    """The codec that KEY_LENGTH, KEY_ORDER and KEY_SECRET describe.

    Logs a warning when a scrambled codec uses the documented default secret.
    """
    if settings.KEY_ORDER == "sequential":
        return KeyCodec(settings.KEY_LENGTH)
    if settings.KEY_SECRET == DEFAULT_KEY_SECRET:
        log.warning(
            "KEY_SECRET is the documented default, so anyone can recover the order of the "
            "keys; set your own KEY_SECRET before the counter store is first used (it is "
            "pinned there and cannot be changed later)"
        )
    permutation = KeyedPermutation(BASE**settings.KEY_LENGTH, settings.KEY_SECRET)
    return KeyCodec(settings.KEY_LENGTH, permutation)


def mapping_identity(codec: KeyCodec) -> dict[str, str]:
    """What the counter store pins at first use: the settings that define the mapping.

    The secret itself is never stored, only its fingerprint.
    """
    identity = {"KEY_LENGTH": str(codec.length), "KEY_ORDER": codec.order}
    if codec.permutation is not None:
        identity["KEY_SECRET"] = codec.permutation.fingerprint
    return identity
