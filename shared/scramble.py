"""A keyed permutation of [0, size): a balanced Feistel network with cycle-walking.

The network permutes the numbers of the smallest even bit width `2h` with `2^(2h) >= size`:
a number is split into two h-bit halves and goes through `ROUNDS` rounds of
`(left, right) -> (right, left XOR F(right, round_key))`. That is a bijection on [0, 2^(2h))
whatever F is. Cycle-walking turns it into a bijection on [0, size): a result outside the
range is sent through the network again until it falls inside (the walk stays on the
number's own cycle, which contains the number itself, so it ends; with 2^(2h) < 4 * size it
takes fewer than four passes on average). Nothing is ever reduced with a modulo, so two
numbers can never meet.

The round keys come from HMAC-SHA512 of the secret, so different secrets give unrelated
permutations. It hides the order and the volume of issued keys; it is not meant to keep
anything secret from someone who can analyse many keys with cryptographic tools.

The round function is the 64-bit finaliser of SplitMix64 applied to `right XOR round_key`,
written once for Python ints and once for numpy uint64 arrays (`forward_wide`, for numbers
of up to 120 bits held as (high, low) pairs); both give the same results.
Changing anything here changes the mapping of every deployed counter store (the golden
values in the tests guard against that).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
from numpy.typing import NDArray

ROUNDS = 8
_MASK64 = (1 << 64) - 1
# Vectorised code holds a number of up to 120 bits as two uint64 arrays (high, low):
# number = high * 2^LOW_BITS + low.
LOW_BITS = 60
LOW_MASK = (1 << LOW_BITS) - 1
_MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
_MIX_SHIFTS = (30, 27, 31)
_ROUND_KEY_LABEL = b"mini-forge feistel round keys, keyspace size %d"
_FINGERPRINT_LABEL = b"mini-forge KEY_SECRET fingerprint"


def secret_fingerprint(secret: str) -> str:
    """A short value that changes with the secret and does not reveal it."""
    return hmac.new(secret.encode(), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


class KeyedPermutation:
    """A permutation of [0, size) chosen by `secret`; `forward` and `backward` invert each other."""

    def __init__(self, size: int, secret: str) -> None:
        if size < 2:
            raise ValueError("a keyed permutation needs at least two numbers")
        self.size = size
        self.fingerprint = secret_fingerprint(secret)
        bits = (size - 1).bit_length()
        self._half_bits = (bits + 1) // 2
        if self._half_bits > 64:
            raise ValueError("a keyed permutation covers at most 2^128 numbers")
        self._half_mask = (1 << self._half_bits) - 1
        digest = hmac.new(secret.encode(), _ROUND_KEY_LABEL % size, hashlib.sha512).digest()
        self._round_keys = [int.from_bytes(digest[i * 8 : i * 8 + 8], "big") for i in range(ROUNDS)]

    def forward(self, number: int) -> int:
        """The image of `number`, which must lie in [0, size)."""
        number = self._network(number)
        while number >= self.size:
            number = self._network(number)
        return number

    def backward(self, number: int) -> int:
        """The number whose image is `number`, which must lie in [0, size)."""
        number = self._inverse_network(number)
        while number >= self.size:
            number = self._inverse_network(number)
        return number

    def forward_wide(
        self, high: NDArray[np.uint64], low: NDArray[np.uint64]
    ) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
        """`forward` of every number `high * 2^LOW_BITS + low`, vectorised, in the same form."""
        if self._half_bits > LOW_BITS:
            raise ValueError(f"forward_wide needs a permutation of at most {2 * LOW_BITS} bits")
        half_bits = np.uint64(self._half_bits)
        left = (low >> half_bits) | (high << np.uint64(LOW_BITS - self._half_bits))
        right = low & np.uint64(self._half_mask)
        left, right = self._network_array(left, right)
        walking = np.flatnonzero(self._outside(left, right))
        while walking.size:
            again_left, again_right = self._network_array(left[walking], right[walking])
            left[walking] = again_left
            right[walking] = again_right
            walking = walking[self._outside(again_left, again_right)]
        # The shift drops bits past 64, which lie above LOW_BITS anyway.
        low = ((left << half_bits) | right) & np.uint64(LOW_MASK)
        high = left >> np.uint64(LOW_BITS - self._half_bits)
        return high, low

    def _network(self, number: int) -> int:
        left, right = number >> self._half_bits, number & self._half_mask
        for round_key in self._round_keys:
            left, right = right, left ^ self._round_function(right, round_key)
        return (left << self._half_bits) | right

    def _inverse_network(self, number: int) -> int:
        left, right = number >> self._half_bits, number & self._half_mask
        for round_key in reversed(self._round_keys):
            left, right = right ^ self._round_function(left, round_key), left
        return (left << self._half_bits) | right

    def _round_function(self, half: int, round_key: int) -> int:
        value = half ^ round_key
        value ^= value >> _MIX_SHIFTS[0]
        value = (value * _MIX_MULTIPLIERS[0]) & _MASK64
        value ^= value >> _MIX_SHIFTS[1]
        value = (value * _MIX_MULTIPLIERS[1]) & _MASK64
        value ^= value >> _MIX_SHIFTS[2]
        return value & self._half_mask

    def _network_array(
        self, left: NDArray[np.uint64], right: NDArray[np.uint64]
    ) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
        half_mask = np.uint64(self._half_mask)
        for round_key in self._round_keys:
            # uint64 multiplication wraps modulo 2^64, exactly like the `& _MASK64` above.
            value = right ^ np.uint64(round_key)
            value ^= value >> np.uint64(_MIX_SHIFTS[0])
            value *= np.uint64(_MIX_MULTIPLIERS[0])
            value ^= value >> np.uint64(_MIX_SHIFTS[1])
            value *= np.uint64(_MIX_MULTIPLIERS[1])
            value ^= value >> np.uint64(_MIX_SHIFTS[2])
            value &= half_mask
            value ^= left
            left, right = right, value
        return left, right

    def _outside(self, left: NDArray[np.uint64], right: NDArray[np.uint64]) -> NDArray[np.bool_]:
        """Which numbers `left * 2^h + right` are not below `size`."""
        size_left = np.uint64(self.size >> self._half_bits)
        size_right = np.uint64(self.size & self._half_mask)
        outside: NDArray[np.bool_] = (left > size_left) | (
            (left == size_left) & (right >= size_right)
        )
        return outside
