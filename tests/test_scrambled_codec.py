"""The scrambled codec is a bijection onto L-character keys, keyed, stable and fast to vectorise."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refiller.mapping import make_codec, mapping_identity
from shared.codec import ALPHABET, KeyCodec, KeyspaceError
from shared.scramble import KeyedPermutation
from shared.settings import DEFAULT_KEY_SECRET, Settings

SECRETS = ["alpha", "beta", "a longer secret with spaces and ünïcode"]
ALPHABET_BYTES = set(ALPHABET.encode())


def scrambled(length: int, secret: str) -> KeyCodec:
    return KeyCodec(length, KeyedPermutation(62**length, secret))


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("length", [1, 2, 3])
def test_exhaustive_bijection(length: int, secret: str) -> None:
    codec = scrambled(length, secret)
    keys = codec.encode_range(0, 62**length)
    assert len(set(keys)) == 62**length
    assert all(len(key) == length and set(key) <= ALPHABET_BYTES for key in keys)
    assert [codec.decode(key.decode()) for key in keys] == list(range(62**length))


@given(
    length=st.integers(4, 20),
    secret=st.text(min_size=1, max_size=40),
    fraction=st.floats(0, 1, exclude_max=True),
)
def test_round_trip_and_bounds(length: int, secret: str, fraction: float) -> None:
    codec = scrambled(length, secret)
    size = 62**length
    number = min(int(fraction * size), size - 1)
    key = codec.encode(number)
    assert len(key) == length and set(key) <= set(ALPHABET)
    assert codec.decode(key) == number
    for outside in (-1, size, size + number):
        with pytest.raises(KeyspaceError):
            codec.encode(outside)


@given(
    length=st.integers(1, 20),
    fraction=st.floats(0, 1, exclude_max=True),
    count=st.integers(0, 50),
    order=st.sampled_from(["sequential", "scrambled"]),
)
def test_encode_range_matches_encode(length: int, fraction: float, count: int, order: str) -> None:
    """The vectorised range encoder gives the same keys as the pure-Python `encode`."""
    size = 62**length
    count = min(count, size)
    codec = KeyCodec(length) if order == "sequential" else scrambled(length, "range-secret")
    for first in (0, int(fraction * (size - count)), size - count):
        numbers = range(first, first + count)
        keys = codec.encode_range(first, first + count)
        assert [key.decode() for key in keys] == [codec.encode(n) for n in numbers]


def test_encode_range_refuses_numbers_past_the_keyspace() -> None:
    codec = scrambled(2, "secret")
    with pytest.raises(KeyspaceError):
        codec.encode_range(3800, 3845)


def test_key_lengths_past_20_are_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 20"):
        KeyCodec(21)


def test_first_two_million_keys_of_length_7_are_distinct() -> None:
    """The original service's `mix64 % 62^7` repeated keys within the first 10 million."""
    keys = scrambled(7, "regression").encode_range(0, 2_000_000)
    assert len(set(keys)) == 2_000_000


def test_same_secret_same_mapping_different_secret_unrelated_mapping() -> None:
    first, again, other = (scrambled(7, s).encode_range(0, 10_000) for s in ("a", "a", "b"))
    assert first == again
    assert sum(x == y for x, y in zip(first, other, strict=True)) < 10


def test_consecutive_numbers_show_no_order() -> None:
    keys = scrambled(7, "order").encode_range(0, 10_000)
    ascending = sum(a < b for a, b in itertools.pairwise(keys))
    assert 4_500 < ascending < 5_500
    assert len({key[:1] for key in keys}) == 62


def test_the_mapping_never_changes_between_versions() -> None:
    """A changed algorithm would re-issue keys of every existing counter store."""
    codec = scrambled(7, "golden-secret")
    golden = ["nq3e7w1", "uaPwiV7", "F88nHeP", "Dc52FYu", "KWC50sg"]
    assert [codec.encode(n) for n in (0, 1, 2, 123_456_789, 62**7 - 1)] == golden
    long_codec = scrambled(11, "golden-secret")
    assert [long_codec.encode(n) for n in (0, 1)] == ["MKAK5aSAb8X", "zuoUimvJcxg"]


def test_sequential_codec_is_unchanged() -> None:
    codec = make_codec(Settings(KEY_ORDER="sequential"))
    assert codec.order == "sequential"
    assert codec.encode(36) == "000000a"
    assert codec.encode_range(61, 63) == [b"000000z", b"0000010"]


def test_make_codec_warns_only_for_the_default_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        codec = make_codec(Settings(KEY_LENGTH=5))
    assert codec.order == "scrambled" and codec.length == 5
    assert "KEY_SECRET is the documented default" in caplog.text
    assert DEFAULT_KEY_SECRET not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_codec(Settings(KEY_SECRET="my-own-secret"))
    assert caplog.text == ""


def test_mapping_identity_pins_length_order_and_a_secret_fingerprint() -> None:
    identity = mapping_identity(make_codec(Settings(KEY_LENGTH=6, KEY_SECRET="hunter2")))
    assert identity["KEY_LENGTH"] == "6" and identity["KEY_ORDER"] == "scrambled"
    assert "hunter2" not in identity["KEY_SECRET"]
    other = mapping_identity(make_codec(Settings(KEY_LENGTH=6, KEY_SECRET="hunter3")))
    assert other["KEY_SECRET"] != identity["KEY_SECRET"]
    sequential = mapping_identity(make_codec(Settings(KEY_ORDER="sequential")))
    assert sequential == {"KEY_LENGTH": "7", "KEY_ORDER": "sequential"}
