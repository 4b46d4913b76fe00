"""The key mapping the refiller uses: the codec its settings describe, and what it pins.

The counter store pins the mapping (KEY_LENGTH, KEY_ORDER, a fingerprint of KEY_SECRET) at
first use, so a refiller started later with other values is refused before it could turn
old numbers into keys already issued.
"""

from __future__ import annotations

import logging

from shared.codec import BASE, KeyCodec
from shared.scramble import KeyedPermutation
from shared.settings import DEFAULT_KEY_SECRET, Settings

log = logging.getLogger("mini_forge.refiller")


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
