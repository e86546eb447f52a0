"""Secrets never leave the process: every URL driftloop prints, logs, stores or sends goes through here.

A URL's password (``postgresql://user:secret@host/db``) and secret-looking query values
(``?password=...``, ``?token=...``) are replaced by ``***``: the user, host and database stay, so
a message still says which store it means.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<password>[^/?#@\s]*)@")
_QUERY_SECRET = re.compile(r"(?i)(?P<key>[?&](?:password|passwd|pwd|token|access_token|secret|api_key|apikey)=)[^&#\s]*")


def redact(text: str) -> str:
    """``text`` with every URL password and secret query value shown as ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}***", text)


def without_credentials(url: str) -> str:
    """``url`` with no user or password at all: a link for a browser, which asks for them itself."""
    return re.sub(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s]*@", r"\g<scheme>", redact(url))
