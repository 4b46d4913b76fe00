"""The key codec: a bijection between numbers in [0, 62^L) and L-character base62 keys.

Alphabet `0-9A-Za-z`, fixed width, zero-padded. With KEY_ORDER=sequential the number is
written as it is (L=7: 36 -> `000000a`); with KEY_ORDER=scrambled it first goes through a
keyed permutation of [0, 62^L) (shared/scramble.py), so consecutive numbers give unrelated
keys. Either way a number outside the keyspace is refused with `KeyspaceError`; nothing is
ever wrapped with a modulo. `encode_range` encodes a whole reserved range at once
(vectorised with numpy), which is what keeps the refiller fast.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from shared.scramble import LOW_BITS, LOW_MASK, KeyedPermutation

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(ALPHABET)
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_DIGIT_OF = {char: value for value, char in enumerate(ALPHABET)}
# 62^20 < 2^(2 * LOW_BITS): every number fits the (high, low) form of the vectorised code.
MAX_KEY_LENGTH = 20
# encode_range divides by 62 limb by limb; (61 << 30) | limb still fits in 64 bits.
_ONE_LIMB_LENGTH = 10  # 62^10 < 2^LOW_BITS
_LIMB_BITS = 30
_LIMB_MASK = (1 << _LIMB_BITS) - 1


class KeyspaceError(ValueError):
    """A number or key lies outside the keyspace of the configured key length."""


class KeyCodec:
    """Base62 codec for keys of exactly `length` characters, sequential or scrambled.

    Without a permutation, numbers map to keys in order; with one, each number is permuted
    within [0, 62^length) before it is written (and after it is read back).
    """

    def __init__(self, length: int, permutation: KeyedPermutation | None = None) -> None:
        if not 1 <= length <= MAX_KEY_LENGTH:
            raise ValueError(f"key length must be between 1 and {MAX_KEY_LENGTH}")
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
        high, low = _wide_arange(start, end)
        if self.permutation is not None:
            high, low = self.permutation.forward_wide(high, low)
        # Long division by 62, one digit at a time from the right. A number below 62^10 is
        # `low` alone; a longer one is divided as the limbs [high, 30 bits, 30 bits].
        limbs = [low]
        if self.length > _ONE_LIMB_LENGTH:
            limbs = [high, low >> np.uint64(_LIMB_BITS), low & np.uint64(_LIMB_MASK)]
        digits = np.empty((end - start, self.length), dtype=np.uint8)
        for position in range(self.length - 1, -1, -1):
            if position + 1 == _ONE_LIMB_LENGTH and len(limbs) > 1:
                limbs = [(limbs[1] << np.uint64(_LIMB_BITS)) | limbs[2]]  # limbs[0] is 0 now
            limbs[0], remainder = np.divmod(limbs[0], np.uint64(BASE))
            for index in range(1, len(limbs)):
                shifted = (remainder << np.uint64(_LIMB_BITS)) | limbs[index]
                limbs[index], remainder = np.divmod(shifted, np.uint64(BASE))
            digits[:, position] = remainder
        keys: list[bytes] = _ALPHABET_BYTES[digits].view(f"S{self.length}").ravel().tolist()
        return keys

    def _check_number(self, number: int) -> None:
        if not 0 <= number < self.keyspace_size:
            raise KeyspaceError(
                f"number {number} is outside the keyspace [0, 62^{self.length}) of "
                f"{self.length}-character keys"
            )


def _wide_arange(start: int, end: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """The numbers [start, end) as (high, low) uint64 arrays: number = high * 2^60 + low."""
    start_high, start_low = divmod(start, 1 << LOW_BITS)
    low = np.arange(end - start, dtype=np.uint64)
    low += np.uint64(start_low)
    high = low >> np.uint64(LOW_BITS)
    high += np.uint64(start_high)
    low &= np.uint64(LOW_MASK)
    return high, low
