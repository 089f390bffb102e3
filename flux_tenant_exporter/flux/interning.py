"""One instance per distinct string, message and inventory: namespaces, reasons, messages and revisions repeat.

An ``Interner`` belongs to whoever projects objects (the running exporter, a ``report``): it is bounded, so churn
of distinct values (new revisions, new failure messages) cannot grow it without limit; when a table is full, all
start again (sharing restarts, nothing is lost).
"""

from __future__ import annotations

from flux_tenant_exporter.base.redact import redact
from flux_tenant_exporter.flux.model import Inventory

#: distinct strings kept for sharing; past this (churn of unique revisions) the tables start again
SHARED_LIMIT = 8192
#: characters held by the message table (keys and redacted values); past this the tables start again, so churn of
#: distinct messages (up to MAX_MESSAGE each) cannot hold more than a few MiB
MESSAGE_CHARS = 2 * 1024 * 1024
#: the longest condition message kept (the key too: messages may be 32 KiB long)
MAX_MESSAGE = 4096


class Interner:
    """Shares equal strings and inventories; redacts and truncates each distinct message once."""

    def __init__(self, *, limit: int = SHARED_LIMIT, message_chars: int = MESSAGE_CHARS) -> None:
        """Bounded by ``limit`` entries per table and ``message_chars`` characters of messages."""
        self.limit = limit
        self.message_chars = message_chars
        self._shared: dict[str, str] = {}
        self._redacted: dict[str, str] = {}
        self._inventories: dict[Inventory, Inventory] = {}
        self._chars = 0

    def __len__(self) -> int:
        """The entries held in every table."""
        return len(self._shared) + len(self._redacted) + len(self._inventories)

    @property
    def chars(self) -> int:
        """The characters the message table holds."""
        return self._chars

    @property
    def messages(self) -> int:
        """The distinct messages the message table holds."""
        return len(self._redacted)

    def bound(self) -> None:
        """Start every table again when one holds too many entries or the messages too many characters."""
        if (len(self._shared) > self.limit or len(self._redacted) > self.limit
                or len(self._inventories) > self.limit or self._chars > self.message_chars):
            self._shared.clear()
            self._redacted.clear()
            self._inventories.clear()
            self._chars = 0

    def share(self, text: str) -> str:
        """The one instance of ``text``."""
        return self._shared.setdefault(text, text)

    def share_opt(self, text: str | None) -> str | None:
        """The one instance of ``text``; None for None or ""."""
        return self._shared.setdefault(text, text) if text else None

    def message(self, text: str) -> str:
        """A condition message, cut to MAX_MESSAGE characters, redacted (once per distinct text) and shared."""
        text = text[:MAX_MESSAGE]
        found = self._redacted.get(text)
        if found is None:
            found = self._redacted[text] = self.share(redact(text))
            self._chars += len(text) + (len(found) if found is not text else 0)
        return found

    def redacted(self, text: str) -> str:
        """A URL-like value (a source's URL or endpoint) redacted once per distinct text, and shared."""
        found = self._redacted.get(text)
        if found is None:
            found = self._redacted[text] = self.share(redact(text))
            self._chars += len(text) + (len(found) if found is not text else 0)
        return found

    def inventory(self, inventory: Inventory) -> Inventory:
        """The one instance of an equal inventory (the Kustomizations of a namespace often apply the same shape)."""
        return self._inventories.setdefault(inventory, inventory)
