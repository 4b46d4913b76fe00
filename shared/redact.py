"""Keeping secrets out of output: URLs with their password masked, secret settings hidden.

Every URL that is printed or logged goes through `redact_url`; a secret setting's value is
never echoed back, not even in the error about it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Settings whose values are secrets in their own right.
SECRET_SETTINGS = frozenset({"API_TOKEN", "KEY_SECRET"})
# Settings that are URLs which may carry a password.
URL_SETTINGS = frozenset({"REDIS_URL", "DATABASE_URL"})


def url_password(url: str) -> str | None:
    """The password in `url`, if it has one."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """`url` with its password replaced by ***; unparseable text is masked after the scheme."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        scheme, separator, _rest = url.partition("://")
        return f"{scheme}{separator}{MASK}" if separator else MASK
    if not password:
        return url
    user_info, _at, host = parts.netloc.rpartition("@")
    user = user_info.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def redact_setting(name: str, value: object) -> str:
    """How the value of setting `name` may be shown to a user."""
    if name in SECRET_SETTINGS:
        return MASK
    if name in URL_SETTINGS:
        return redact_url(str(value))
    return str(value)
