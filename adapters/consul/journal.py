"""The events the Consul feeds have seen since open, which every watcher reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from adapters.base import ChangeNotifier, WatchEvent
from shared.errors import HubError


@dataclass
class Journal:
    """Events the feeds have seen since open, oldest first, for every watcher to read."""

    maxlen: int
    events: list[WatchEvent] = field(default_factory=list)
    dropped: int = 0
    """How many events were trimmed from the front (absolute position of events[0])."""
    floor: int = 0
    """Every change with a revision above this is held (as far as the feeds saw it)."""
    head: int = 0
    """The highest revision the feeds have reached."""
    errors: dict[str, HubError] = field(default_factory=dict)
    """The current failure of each feed ("kv", "catalog"); watchers raise the first."""
    changes: ChangeNotifier = field(default_factory=ChangeNotifier)

    def append(self, batch: Iterable[WatchEvent], reached: int) -> None:
        """Add a feed's events (it has reached revision ``reached``); wake the watchers."""
        self.events.extend(batch)
        self.head = max(self.head, reached)
        overflow = len(self.events) - self.maxlen
        if overflow > 0:
            self.floor = max(self.floor, max(e.revision for e in self.events[:overflow]))
            del self.events[:overflow]
            self.dropped += overflow
        self.notify()

    def trim_below(self, revision: int) -> None:
        """Forget the events before ``revision`` (watches from older revisions fail)."""
        keep = [e for e in self.events if e.revision >= revision]
        self.dropped += len(self.events) - len(keep)
        self.events = keep
        self.floor = max(self.floor, revision - 1)

    def notify(self) -> None:
        """Wake every watcher (new events, a feed error, or close)."""
        self.changes.notify()
