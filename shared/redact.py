"""Keeping secrets out of output: URLs with their password masked, secret settings hidden.

Every URL that is printed or logged goes through `redact_url`; a secret setting's value is
never echoed back, not even in the error about it.
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Settings whose values are secrets in their own right.
SECRET_SETTINGS = frozenset({"API_TOKEN", "KEY_SECRET"})
# Settings that are URLs which may carry a password.
URL_SETTINGS = frozenset({"REDIS_URL", "DATABASE_URL"})


# Query parameters that carry a password (redis-py and libpq both accept `?password=`).
PASSWORD_PARAMETERS = frozenset({"password", "sslpassword"})


def _is_password_parameter(pair: str) -> bool:
    return unquote_plus(pair.partition("=")[0]).lower() in PASSWORD_PARAMETERS


def url_secrets(url: str) -> set[str]:
    """Every password in `url` (user info and query), as written and URL-decoded."""
    try:
        parts = urlsplit(url)
        passwords = [parts.password or ""]
    except ValueError:
        return set()
    passwords += [
        pair.partition("=")[2] for pair in parts.query.split("&") if _is_password_parameter(pair)
    ]
    forms = (unquote, unquote_plus)
    return {form for p in passwords for form in (p, *(f(p) for f in forms)) if form}


def redact_url(url: str) -> str:
    """`url` with every password replaced by ***; unparseable text is masked after the scheme."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        scheme, separator, _rest = url.partition("://")
        return f"{scheme}{separator}{MASK}" if separator else MASK
    pairs = parts.query.split("&")
    if not password and not any(_is_password_parameter(pair) for pair in pairs):
        return url
    if password:
        user_info, _at, host = parts.netloc.rpartition("@")
        user = user_info.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:{MASK}@{host}")
    masked = [
        f"{pair.partition('=')[0]}={MASK}" if _is_password_parameter(pair) else pair
        for pair in pairs
    ]
    return urlunsplit(parts._replace(query="&".join(masked)))


def redact_setting(name: str, value: object) -> str:
    """How the value of setting `name` may be shown to a user."""
    if name in SECRET_SETTINGS:
        return MASK
    if name in URL_SETTINGS:
        return redact_url(str(value))
    return str(value)
