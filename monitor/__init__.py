"""monitor: polls news feeds, groups reports of one event across outlets, emails per-event digests."""
from __future__ import annotations

__version__ = "0.1.0"
