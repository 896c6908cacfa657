"""Logging: one line per event with key=value fields on stderr (journald keeps it as is).

`event(log, "feed_failed", feed=url, reason="timeout")` writes
`level=warning event=feed_failed feed=https://... reason=timeout`. Values are quoted when
they hold spaces or quotes, and control characters are escaped, so one event is one line
and a feed cannot forge log lines. Secrets are never passed here.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

LOGGER = "monitor"


def _value(value: Any) -> str:
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    if not text or any(c in text for c in ' "='):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    def __init__(self, with_time: bool) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        parts = []
        if self.with_time:
            parts.append("time=" + self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"))
        parts.append(f"level={record.levelname.lower()}")
        if fields is None:
            parts.append(f"msg={_value(record.getMessage())}")
        else:
            parts.append(f"event={record.getMessage()}")
            parts.extend(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup_logging(level: str = "info", *, with_time: bool | None = None) -> logging.Logger:
    """Configure the `monitor` logger once; journald adds its own time stamps."""
    import os

    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    if with_time is None:
        with_time = "JOURNAL_STREAM" not in os.environ
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(with_time))
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, name, extra={"fields": fields})


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)
