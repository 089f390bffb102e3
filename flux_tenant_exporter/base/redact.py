"""Credential redaction: the one function every free-text field and URL-like label goes through.

Condition messages, source URLs and Bucket endpoints (the ``url`` labels, ``gotk_resource_info`` included),
``/readyz`` messages and logged raw lines may carry what a controller echoed: a basic-auth URL, an
``Authorization`` header, a JSON or YAML credentials blob, a cloud key. ``redact`` replaces every value that
looks like a credential with ``***`` and keeps the rest of the text. It prefers over-redaction: when unsure,
the value goes (a key/value pair keeps its key, so the message still says what was wrong).
"""

from __future__ import annotations

import base64
import binascii
import re

MASK = "***"

#: key names whose value is a credential in any form (substring match, case-insensitive): password,
#: AWS_SECRET_ACCESS_KEY, client_secret, x-api-key, accessToken, sessionToken, ...
_STRONG = (
    r"passw|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?key|"
    r"account[_-]?key|(?<![a-z])auth(?:[_-]?(?:token|key|header))?(?![a-z])|cookie|bearer"
)
#: key names whose value is a credential in ``key=value`` and quoted forms (a query string, JSON); followed by
#: ": <text>" they usually start an error's reason ("failed to verify signature: ..."), which is kept
_WEAK = r"credential|session|signature|(?<![a-z])sig(?![a-z])|x-amz-[\w-]+"
_KEYWORD = f"{_STRONG}|{_WEAK}"
_KEY = rf"[\w.-]*(?:{_KEYWORD})[\w.-]*"
_STRONG_KEY = rf"[\w.-]*(?:{_STRONG})[\w.-]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole.
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
     MASK),
    # An Authorization header or field: everything after it up to the end of the line or a closing quote.
    (re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?)[^\r\n"']+"""), rf"\g<1>{MASK}"),
    # JSON / YAML / env / query forms: "password": "...", password: ..., AWS_SECRET_ACCESS_KEY=..., ?sig=...
    (re.compile(rf"""(?i)((?<![\w.-])["']?{_KEY}["']?\s*:\s*)(?:{_QUOTED})"""), rf'\g<1>"{MASK}"'),
    (re.compile(rf"""(?i)((?<![\w.-])["']?{_STRONG_KEY}["']?\s*:\s*+)(?!["']?\*\*\*)[^\r\n,;}}\]]+"""),
     rf"\g<1>{MASK}"),
    (re.compile(rf"""(?i)((?<![\w.-])["']?{_KEY}["']?\s*=\s*+)(?:{_QUOTED}|[^\s&,;}}\]"']+)"""), rf"\g<1>{MASK}"),
    # URL userinfo: scheme://user:pass@host, also with an unencoded '@' (the last '@' before the path ends it),
    # and a password holding '/' (user:pa/ss@host).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@"), rf"\g<1>{MASK}@"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@:]*:[^\s@]*@"), rf"\g<1>{MASK}@"),
    # Scheme-less KEY:SECRET@host (a Bucket endpoint, a git remote with a password).
    (re.compile(r"(?<![\w.%+~*/-])[\w.%+~-]+:[^\s/]*@(?=[\w.-])"), f"{MASK}@"),
    # Bearer / token schemes: whatever follows is the credential ("bearer token ghp_..." too).
    (re.compile(r"(?i)\b(bearer|token)(\s+)(?:token\s+)?(?!\*\*\*)[A-Za-z0-9._~+/=-]*[0-9._~+/=-][A-Za-z0-9._~+/=-]*"),
     rf"\g<1>\g<2>{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)(?!\*\*\*)[^\s\"',;]+"), rf"\g<1>{MASK}"),
    # Well-known token formats anywhere in the text.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),  # JWT
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})"), MASK),  # GitHub
    (re.compile(r"\bgl(?:pat|dt|rt|ptt|ft|cbt|oas|soat|imt)-[A-Za-z0-9_-]{16,}"), MASK),  # GitLab
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), MASK),  # AWS access key ids
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MASK),  # Slack
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MASK),  # Google API keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), MASK),  # "sk-" secret keys
)
#: ``Basic <base64 of user:password>``
_BASIC = re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/_-]{6,}={0,2})(?![\w+/=])")
#: a long alphanumeric run: a bare AWS secret key or an opaque API token when it mixes upper case, lower case and
#: digits (checked in ``_opaque``); lower-case hex revisions and names have no upper case and stay
_RUN = re.compile(r"(?<![\w+/=.-])[A-Za-z0-9+/=_-]{32,}(?![\w+/=.-])")
#: cheap pre-checks of the rules above (text with none of them cannot hold a shape they handle): substrings of the
#: lower-cased text (every keyword, scheme and header above contains one), the token formats (case-sensitive), and
#: userinfo ("://", or "KEY:SECRET@": a revision like main@sha1:... has neither)
_NEEDLES = ("://", "-----begin", "bearer", "basic", "token", "passw", "passphrase", "pwd", "secret", "key", "auth",
            "cookie", "credential", "session", "sig", "x-amz-")
_TOKEN_FORMATS = re.compile(r"eyJ|gh[pousr]_|github_pat_|gl[a-z]{1,4}-|A[GIKNRS][A-Z][A-Z0-9]{17}|xox|AIza|sk-")
_USERINFO = re.compile(r":[^\s/]*@")


def _may_hold_a_credential(text: str) -> bool:
    lower = text.lower()
    return (any(needle in lower for needle in _NEEDLES) or _TOKEN_FORMATS.search(text) is not None
            or ("@" in text and _USERINFO.search(text) is not None))


#: cheap pre-check of ``_RUN``: a run long enough to be an opaque token
_LONG_RUN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")


def _basic(match: re.Match[str]) -> str:
    value = match.group(2)
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=False)
    except (binascii.Error, ValueError):
        decoded = b""
    # A real credential decodes to user:password; a word after "basic" ("Basic authentication") is kept.
    if b":" in decoded or any(c.isdigit() or c in "+/=" for c in value):
        return match.group(1) + MASK
    return match.group(0)


def _opaque(match: re.Match[str]) -> str:
    run = match.group(0)
    if any(c.isupper() for c in run) and any(c.islower() for c in run) and any(c.isdigit() for c in run):
        return MASK
    return run


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``***``."""
    if not text:
        return text
    if _may_hold_a_credential(text):
        for pattern, replacement in _RULES:
            text = pattern.sub(replacement, text)
        text = _BASIC.sub(_basic, text)
    return _RUN.sub(_opaque, text) if _LONG_RUN.search(text) else text
