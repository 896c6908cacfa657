"""Configuration: TOML file + environment -> one frozen Settings record, validated at start-up.

Every bad key or value is reported by its dotted name (``polling.interval: bad duration 'soon'``)
so an operator can fix the file without reading code. Unknown keys are errors, not ignored:
a typo like ``intervall`` would otherwise silently keep the default.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.errors import ConfigError

DEFAULT_DB = "monitor.db"
DEFAULT_CONFIG = "monitor.toml"
DEFAULT_USER_AGENT = f"monitor/{__version__} (+https://github.com/monitor-news/monitor)"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, key: str = "duration") -> float:
    """'15m' -> 900.0 seconds. Bare numbers are seconds. Negative or malformed values are errors."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like '15m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(f"{key}: bad duration {value!r} (use a number with s, m, h or d, e.g. '15m')")
    if seconds <= 0:
        raise ConfigError(f"{key}: duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


# A field's metadata says how to read it: "duration" fields take '15m' strings.
def _duration(default: float) -> Any:
    return field(default=default, metadata={"kind": "duration"})


@dataclass(frozen=True)
class PollingSettings:
    interval: float = _duration(15 * 60)  # default poll interval per feed
    timeout: float = _duration(20)  # overall deadline for one fetch, connect to last byte
    connect_timeout: float = _duration(10)
    parse_timeout: float = _duration(10)  # bound on one feedparser run
    max_bytes: int = 10_000_000  # decoded body cap
    max_entries: int = 1000  # entries kept per feed document
    per_host: int = 2  # concurrent requests to one host
    max_connections: int = 20  # concurrent requests overall
    parse_workers: int = 0  # processes for parsing; 0 = one per core
    min_interval: float = _duration(5 * 60)  # lower bound when Cache-Control/ttl stretch the interval
    max_interval: float = _duration(24 * 3600)  # upper bound for backoff and ttl stretching
    user_agent: str = DEFAULT_USER_AGENT
    allow_private_addresses: bool = False
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusteringSettings:
    window: float = _duration(7 * 86400)  # how far back a new entry looks for its event
    follow_up_window: float = _duration(365 * 86400)  # how far back a follow-up finds its incident by names


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty = no SMTP: digests go to the maildir outbox
    port: int = 25
    security: str = "none"  # none | starttls | tls
    username: str = ""
    password_file: str = ""
    timeout: float = _duration(30)
    # "from" is a Python keyword; the TOML key stays `from`.
    sender: str = "monitor@localhost"


@dataclass(frozen=True)
class DigestSettings:
    outbox: str = ""  # maildir path; used instead of SMTP when set, or when no SMTP host is set
    timezone: str = "UTC"  # for "daily HH:MM" and cron schedules
    max_items: int = 50  # items per digest before "+N more"
    chat_max_items: int = 10  # items per chat/webhook message before "+N more"
    max_age: float | None = None  # skip clusters whose newest entry is older (seconds)


@dataclass(frozen=True)
class TopicSettings:
    name: str
    query: str
    title: str = ""
    recipients: tuple[str, ...] = ()
    schedule: str = "daily 07:00"
    min_outlets: int = 1
    # Chat and webhook destinations (Apprise URLs): from `notify`, then the lines of `notify_file`
    # (read by load_settings). They hold tokens, so they are kept out of repr() and messages.
    notify: tuple[str, ...] = field(default=(), repr=False)
    notify_file: str = ""  # as written in the config (relative to it; $VARIABLES expanded)


@dataclass(frozen=True)
class RetentionSettings:
    entries: float | None = None  # delete entries published longer ago than this (seconds); None = keep all


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"


@dataclass(frozen=True)
class Settings:
    database: str = DEFAULT_DB
    feeds: str = ""  # OPML synced at daemon start; "" = none
    busy_timeout: float = _duration(30)  # how long a writer waits for another writer's lock
    polling: PollingSettings = field(default_factory=PollingSettings)
    clustering: ClusteringSettings = field(default_factory=ClusteringSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    log: LogSettings = field(default_factory=LogSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    topics: tuple[TopicSettings, ...] = ()
    config_path: str | None = None  # where the settings were read from, for messages


_SECURITY = ("none", "starttls", "tls")
_LEVELS = ("debug", "info", "warning", "error")
_SCHEDULE = re.compile(r"^(immediate|hourly|daily ([01]\d|2[0-3]):[0-5]\d|(\S+\s+){4}\S+)$")
_TOPIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


def _coerce(key: str, value: Any, default: Any, kind: str | None) -> Any:
    if kind == "duration":
        return parse_duration(value, key)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{key}: unsupported value {value!r}")  # pragma: no cover


def _section(cls: type, data: Any, prefix: str, renames: dict[str, str] | None = None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a table, got {data!r}")
    renames = renames or {}
    known = {f.name: f for f in fields(cls)}
    values = {}
    for raw_key, value in data.items():
        name = renames.get(raw_key, raw_key)
        key = f"{prefix}.{raw_key}"
        hidden = name in renames.values() and raw_key not in renames  # only the TOML spelling is accepted
        if name not in known or hidden:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(_toml_names(cls, renames)))})")
        f = known[name]
        if f.name in ("max_age", "entries"):
            values[name] = parse_duration(value, key)
            continue
        default = f.default if f.default_factory is MISSING else f.default_factory()
        values[name] = _coerce(key, value, default, f.metadata.get("kind"))
    return cls(**values)


def _toml_names(cls: type, renames: dict[str, str]) -> list[str]:
    back = {v: k for k, v in renames.items()}
    return [back.get(f.name, f.name) for f in fields(cls)]


def _topic(data: Any, index: int) -> TopicSettings:
    prefix = f"topics[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a table")
    known = {f.name for f in fields(TopicSettings)}
    for k in data:
        if k not in known:
            raise ConfigError(f"{prefix}.{k}: unknown key (known: {', '.join(sorted(known))})")
    for required in ("name", "query"):
        if required not in data:
            raise ConfigError(f"{prefix}: missing required key '{required}'")
    name = data["name"]
    if not isinstance(name, str) or not _TOPIC_NAME.match(name):
        raise ConfigError(f"{prefix}.name: {name!r} must be lower-case letters, digits, '-' or '_'")
    prefix = f"topics.{name}"
    query = data["query"]
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"{prefix}.query: expected a non-empty FTS5 query string")
    recipients = data.get("recipients", [])
    if not isinstance(recipients, list) or not all(isinstance(r, str) and _EMAIL.match(r)
                                                   for r in recipients):
        raise ConfigError(f"{prefix}.recipients: expected a list of e-mail addresses, got {recipients!r}")
    schedule = data.get("schedule", TopicSettings.schedule)
    if not isinstance(schedule, str) or not _SCHEDULE.match(schedule.strip()):
        raise ConfigError(
            f"{prefix}.schedule: {schedule!r} is not 'immediate', 'hourly', 'daily HH:MM'"
            " or a 5-field cron expression"
        )
    title = data.get("title", "")
    if not isinstance(title, str):
        raise ConfigError(f"{prefix}.title: expected a string")
    min_outlets = data.get("min_outlets", 1)
    if isinstance(min_outlets, bool) or not isinstance(min_outlets, int) or min_outlets < 1:
        raise ConfigError(f"{prefix}.min_outlets: expected a whole number >= 1, got {min_outlets!r}")
    notify = data.get("notify", [])
    if not isinstance(notify, list) or not all(isinstance(u, str) and u.strip() for u in notify):
        # never echo the value: it holds tokens
        raise ConfigError(f"{prefix}.notify: expected a list of Apprise URLs (strings)")
    notify_file = data.get("notify_file", "")
    if not isinstance(notify_file, str):
        raise ConfigError(f"{prefix}.notify_file: expected a file path")
    return TopicSettings(name=name, query=query.strip(), title=title or name, recipients=tuple(recipients),
                         schedule=" ".join(schedule.split()), min_outlets=min_outlets,
                         notify=tuple(u.strip() for u in notify), notify_file=notify_file.strip())


def read_notify_file(topic: TopicSettings, base: Path | None) -> TopicSettings:
    """The topic with the URLs of its `notify_file` added: one per line, blank lines and `#` comments
    skipped. The path is relative to the config file, and `$VARIABLES` in it are expanded, so a
    systemd credential is `notify_file = "${CREDENTIALS_DIRECTORY}/desk-chat"`. A file that cannot
    be read is a configuration error (exit 78), naming the topic and the path, never the content."""
    if not topic.notify_file:
        return topic
    path = Path(os.path.expandvars(topic.notify_file))
    if base is not None and not path.is_absolute():
        path = base / path
    key = f"topics.{topic.name}.notify_file"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    urls = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return replace(topic, notify=tuple(dict.fromkeys([*topic.notify, *urls])))


def settings_from_dict(data: dict[str, Any], config_path: str | None = None) -> Settings:
    """Validate a parsed TOML document. Pure: the environment is applied by load_settings."""
    sections = {"polling": PollingSettings, "clustering": ClusteringSettings, "smtp": SmtpSettings,
                "digest": DigestSettings, "log": LogSettings, "retention": RetentionSettings}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("database", "feeds"):
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected a string path, got {value!r}")
            values[key] = value
        elif key == "busy_timeout":
            values[key] = parse_duration(value, key)
        elif key in sections:
            renames = {"from": "sender"} if key == "smtp" else None
            values[key] = _section(sections[key], value, key, renames)
        elif key == "topics":
            if not isinstance(value, list):
                raise ConfigError("topics: expected [[topics]] tables")
            topics = tuple(_topic(t, i) for i, t in enumerate(value))
            names = [t.name for t in topics]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ConfigError(f"topics.{dup[0]}: topic name used twice")
            values["topics"] = topics
        else:
            raise ConfigError(
                f"{key}: unknown key (known: database, feeds, busy_timeout, polling, clustering, smtp,"
                " digest, log, retention, topics)")
    settings = Settings(**values, config_path=config_path)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if s.smtp.security not in _SECURITY:
        raise ConfigError(f"smtp.security: {s.smtp.security!r} is not one of {', '.join(_SECURITY)}")
    if not 0 < s.smtp.port < 65536:
        raise ConfigError(f"smtp.port: {s.smtp.port} is not a TCP port")
    if s.log.level.lower() not in _LEVELS:
        raise ConfigError(f"log.level: {s.log.level!r} is not one of {', '.join(_LEVELS)}")
    p = s.polling
    if p.per_host < 1 or p.max_connections < 1:
        raise ConfigError("polling.per_host and polling.max_connections must be at least 1")
    if p.max_bytes < 1024:
        raise ConfigError(f"polling.max_bytes: {p.max_bytes} is too small (at least 1024)")
    if p.max_entries < 1:
        raise ConfigError("polling.max_entries: must be at least 1")
    if p.min_interval > p.max_interval:
        raise ConfigError("polling.min_interval: must not exceed polling.max_interval")
    for host in p.allow_hosts:
        if not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$", host):
            raise ConfigError(f"polling.allow_hosts: {host!r} is not 'host' or 'host:port'")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(s.digest.timezone)
    except Exception:
        raise ConfigError(f"digest.timezone: unknown time zone {s.digest.timezone!r}") from None


def resolve_config_path(option: str | None) -> str | None:
    """--config wins, then MONITOR_CONFIG, then ./monitor.toml if it exists."""
    if option:
        return option
    env = os.environ.get("MONITOR_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def load_settings(config_option: str | None = None, db_option: str | None = None,
                  *, required: bool = False) -> Settings:
    """Read the config file (if any), validate it, and apply --db / MONITOR_DB on top.

    An explicitly named config file (option or environment) must exist; the implicit
    ./monitor.toml is optional.
    """
    path = resolve_config_path(config_option)
    data: dict[str, Any] = {}
    explicit = bool(config_option or os.environ.get("MONITOR_CONFIG"))
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            if explicit or required:
                raise ConfigError(
                    f"config file {path} does not exist (run `monitor init` to write one)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        settings = settings_from_dict(data, config_path=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None
    db = db_option or os.environ.get("MONITOR_DB") or settings.database
    feeds = settings.feeds
    if path and data:
        base = Path(path).resolve().parent
        # Paths in a config file are relative to the file, so a unit's WorkingDirectory does not matter.
        if "database" in data and not (db_option or os.environ.get("MONITOR_DB")):
            db = str(base / data["database"])
        if feeds:
            feeds = str(base / feeds)
    base_dir = Path(path).resolve().parent if path else None
    try:
        topics = tuple(read_notify_file(t, base_dir) for t in settings.topics)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None
    return replace(settings, database=db, feeds=feeds, topics=topics)


EXAMPLE_CONFIG = """\
# monitor configuration. Every key is optional; the values shown are the defaults
# unless marked "example". Durations take s, m, h or d ("15m", "72h").

# database = "monitor.db"          # SQLite file; --db and MONITOR_DB take precedence
# feeds = "feeds.opml"             # OPML file synced into the feeds table when the daemon starts
# busy_timeout = "30s"             # how long a writer waits while another process writes

[polling]
# interval = "15m"                 # how often each feed is polled (per feed: Cache-Control/ttl may stretch it)
# timeout = "20s"                  # overall deadline for one fetch, connect to last byte
# connect_timeout = "10s"
# parse_timeout = "10s"            # a feed whose parse takes longer is recorded as an error
# max_bytes = 10_000_000           # larger (decoded) responses are cut off and recorded as errors
# max_entries = 1000               # entries kept from one feed document
# per_host = 2                     # concurrent requests to one host
# max_connections = 20             # concurrent requests overall
# parse_workers = 0                # parser processes; 0 = one per CPU core
# min_interval = "5m"              # bounds for backoff and for intervals stretched by the server
# max_interval = "24h"
# user_agent = "monitor/x.y (+https://...)"
# allow_private_addresses = false  # loopback/private/link-local/reserved destinations are refused unless true
# allow_hosts = []                 # exceptions to that guard: "host" or "host:port", e.g. ["intranet.local:8080"]

[clustering]
# window = "7d"                    # how far back a new entry looks for its event
# follow_up_window = "365d"        # how far back a later report finds its incident by shared names

[smtp]
# host = ""                        # example: "smtp.example.org"; empty = write digests to [digest] outbox
# port = 25
# security = "none"                # none | starttls | tls
# username = ""
# password_file = ""               # else MONITOR_SMTP_PASSWORD, else $CREDENTIALS_DIRECTORY/smtp-password
# timeout = "30s"
# from = "monitor@localhost"

[digest]
# outbox = ""                      # a maildir path: digests are written there instead of sent
#                                  # (with no smtp.host, "maildir" beside the database is used)
# timezone = "UTC"                 # for "daily HH:MM" and cron schedules
# max_items = 50                   # items per digest before "+N more"
# chat_max_items = 10              # items per chat/webhook message before "+N more"
# max_age = "14d"                  # example: skip clusters whose newest entry is older (default: none)

[log]
# level = "info"                   # debug | info | warning | error

[retention]
# entries = "365d"                 # example: delete entries published longer ago (default: keep everything)

# One [[topics]] table per tracked topic (example):
# [[topics]]
# name = "platform-regulation"
# title = "Platform regulation"
# query = '(telegram OR whatsapp OR twitter OR "social media") AND (ban* OR block* OR regulat* OR censor* OR arrest*)'
# recipients = ["desk@example.org"]
# schedule = "daily 07:00"         # or "hourly", "immediate", or a 5-field cron expression
# min_outlets = 1
# notify = ["json://hooks.example.org/desk"]      # example: chat/webhook destinations (Apprise URLs)
# notify_file = "${CREDENTIALS_DIRECTORY}/desk-chat"  # example: the same, one URL per line (they hold tokens)
"""  # noqa: E501 (the sample file is written out as is; its comments line up)
