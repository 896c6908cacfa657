"""Config validation: every bad key or value is named in one line."""
from __future__ import annotations

import tomllib

import pytest

from monitor.config import EXAMPLE_CONFIG, load_settings, parse_duration, settings_from_dict
from monitor.errors import ConfigError


@pytest.mark.parametrize("text,seconds", [("15m", 900), ("72h", 259200), ("7d", 604800), ("20s", 20),
                                          ("1.5h", 5400), (30, 30), (" 2 m ", 120)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "15", "15 minutes", "-5m", "0s", "", True, [1], "1w"])
def test_bad_durations_are_rejected(bad):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(bad, "polling.interval")


def test_example_config_is_valid_and_all_defaults():
    example = settings_from_dict(tomllib.loads(EXAMPLE_CONFIG))
    assert example == settings_from_dict({})


def test_every_documented_key_is_accepted():
    """Uncomment every `# key = value` line of the example: the result must still validate."""
    lines = []
    for line in EXAMPLE_CONFIG.splitlines():
        stripped = line.lstrip("# ")
        if line.startswith("# ") and " = " in stripped and not stripped.startswith(("name", "title", "query",
                                                                                    "recipients", "schedule",
                                                                                    "min_outlets", "notify")):
            lines.append(stripped.split("  #")[0])
        elif line.startswith("["):
            lines.append(line)
    settings = settings_from_dict(tomllib.loads("\n".join(lines)))
    assert settings.polling.interval == 900
    assert settings.digest.max_age == 14 * 86400
    assert settings.smtp.sender == "monitor@localhost"


@pytest.mark.parametrize("doc,needle", [
    ({"polling": {"intervall": "5m"}}, "polling.intervall: unknown key"),
    ({"pollng": {}}, "pollng: unknown key"),
    ({"polling": {"interval": "soon"}}, "polling.interval: bad duration 'soon'"),
    ({"polling": {"per_host": "2"}}, "polling.per_host: expected a whole number"),
    ({"polling": {"per_host": 0}}, "per_host"),
    ({"polling": {"allow_private_addresses": "yes"}}, "polling.allow_private_addresses: expected true or false"),
    ({"polling": {"allow_hosts": "localhost"}}, "polling.allow_hosts: expected a list"),
    ({"polling": {"allow_hosts": ["http://x/"]}}, "polling.allow_hosts"),
    ({"clustering": {"follow_up_window": "a year"}}, "clustering.follow_up_window: bad duration 'a year'"),
    ({"clustering": {"follow_up_window": "0d"}}, "clustering.follow_up_window: duration must be positive"),
    ({"clustering": {"follow_up_window": True}}, "clustering.follow_up_window: expected a duration"),
    ({"clustering": {"follow_up": "365d"}}, "clustering.follow_up: unknown key"),
    ({"smtp": {"security": "ssl"}}, "smtp.security: 'ssl'"),
    ({"smtp": {"port": 70000}}, "smtp.port"),
    ({"smtp": {"sender": "a@b"}}, "smtp.sender: unknown key"),
    ({"digest": {"timezone": "Mars/Olympus"}}, "digest.timezone"),
    ({"log": {"level": "loud"}}, "log.level"),
    ({"database": 5}, "database: expected a string"),
    ({"topics": [{"name": "x"}]}, "missing required key 'query'"),
    ({"topics": [{"name": "Bad Name", "query": "a"}]}, "topics[0].name"),
    ({"topics": [{"name": "x", "query": "a", "schedule": "weekly"}]}, "topics.x.schedule: 'weekly'"),
    ({"topics": [{"name": "x", "query": "a", "recipients": ["not-an-address"]}]}, "topics.x.recipients"),
    ({"topics": [{"name": "x", "query": "a", "colour": "red"}]}, "topics[0].colour: unknown key"),
    ({"topics": [{"name": "x", "query": "a"}, {"name": "x", "query": "b"}]}, "topics.x: topic name used twice"),
])
def test_bad_values_name_the_key(doc, needle):
    with pytest.raises(ConfigError) as info:
        settings_from_dict(doc)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_follow_up_window_is_a_duration_with_a_year_by_default():
    """README: `clustering.follow_up_window`, default `365d`, takes durations like every duration key."""
    assert settings_from_dict({}).clustering.follow_up_window == 365 * 86400
    for value, seconds in (("30d", 30 * 86400), ("36h", 36 * 3600), (600, 600)):
        settings = settings_from_dict({"clustering": {"follow_up_window": value}})
        assert settings.clustering.follow_up_window == seconds
        assert settings.clustering.window == 7 * 86400  # the other clustering key keeps its default


def test_topic_schedules_accepted():
    for schedule in ("immediate", "hourly", "daily 07:00", "*/15 * * * *", "0 7 * * 1-5"):
        s = settings_from_dict({"topics": [{"name": "t", "query": "x", "schedule": schedule}]})
        assert s.topics[0].schedule == schedule


def test_env_and_options_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "m.toml"
    cfg.write_text('database = "from-config.db"\n[polling]\ninterval = "5m"\n')
    s = load_settings(str(cfg))
    assert s.database == str(tmp_path / "from-config.db")  # relative to the config file
    monkeypatch.setenv("MONITOR_DB", "/tmp/env.db")
    assert load_settings(str(cfg)).database == "/tmp/env.db"
    assert load_settings(str(cfg), "/tmp/opt.db").database == "/tmp/opt.db"
    monkeypatch.setenv("MONITOR_CONFIG", str(cfg))
    assert load_settings().polling.interval == 300


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "nope.toml"))


def test_invalid_toml_is_one_line(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text("[polling\ninterval=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(str(cfg))
