"""The sequential base62 codec: width, alphabet, round trips and keyspace bounds."""

from __future__ import annotations

import re

import pytest

from shared.codec import ALPHABET, KeyCodec, KeyspaceError


def test_examples_from_the_original_service() -> None:
    codec = KeyCodec(7)
    assert codec.encode(0) == "0000000"
    assert codec.encode(36) == "000000a"
    assert codec.encode(98) == "000001a"
    assert codec.encode(62**7 - 1) == "zzzzzzz"


def test_alphabet_order() -> None:
    assert ALPHABET == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("length", [1, 2, 3, 7, 10, 11, 15])
def test_round_trip_and_width(length: int) -> None:
    codec = KeyCodec(length)
    top = 62**length - 1
    for number in sorted({0, 1, min(62, top), top // 3, top - 1, top}):
        key = codec.encode(number)
        assert re.fullmatch(rf"[0-9A-Za-z]{{{length}}}", key)
        assert codec.decode(key) == number


@pytest.mark.parametrize("length", [2, 7, 10, 11])
def test_encode_range_matches_encode(length: int) -> None:
    codec = KeyCodec(length)
    top = 62**length
    for start in [0, top // 2, top - 500]:
        keys = codec.encode_range(start, start + 500)
        assert [key.decode() for key in keys] == [
            codec.encode(n) for n in range(start, start + 500)
        ]


def test_whole_keyspace_of_length_2_is_a_bijection() -> None:
    codec = KeyCodec(2)
    keys = codec.encode_range(0, 62**2)
    assert len(set(keys)) == 62**2
    assert all(codec.decode(key.decode()) == n for n, key in enumerate(keys))


@pytest.mark.parametrize("number", [-1, 62**7, 62**7 + 5, 2**64])
def test_numbers_outside_the_keyspace_are_refused_not_wrapped(number: int) -> None:
    with pytest.raises(KeyspaceError, match="outside the keyspace"):
        KeyCodec(7).encode(number)


def test_ranges_past_the_keyspace_are_refused() -> None:
    with pytest.raises(KeyspaceError):
        KeyCodec(2).encode_range(62**2 - 1, 62**2 + 1)


@pytest.mark.parametrize("key", ["000000", "00000000", "000000-", "00000 0"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(KeyspaceError):
        KeyCodec(7).decode(key)
