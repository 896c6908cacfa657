"""The shipped unit: required directives, `systemd-analyze verify` clean, exposure <= 1.5."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "monitor.service"
analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed here")


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_has_the_promised_directives():
    d = directives()
    expected = {"Type": "notify", "Restart": "on-failure", "StateDirectory": "monitor",
                "ConfigurationDirectory": "monitor", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "SystemCallArchitectures": "native",
                "UMask": "0077", "TimeoutStopSec": "30"}
    for key, value in expected.items():
        assert value in d.get(key, []), key
    assert "@system-service" in d["SystemCallFilter"]
    assert d["ExecStart"][0].endswith("monitor run")
    assert "smtp-password:/etc/monitor/smtp-password" in d["LoadCredential"]
    assert "78" in d["RestartPreventExitStatus"][0].split()  # EX_CONFIG from the CLI
    assert re.fullmatch(r"\d+", d["WatchdogSec"][0])
    assert d["User"] == ["monitor"]
    sysusers = (UNIT.parent / "monitor.sysusers").read_text()
    assert re.search(r"^u monitor - ", sysusers, re.M)


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's interpreter, so verify can resolve it."""
    text = UNIT.read_text().replace("ExecStart=/opt/monitor/venv/bin/monitor run",
                                    f"ExecStart={sys.executable} -m monitor run")
    path = tmp_path / "monitor.service"
    path.write_text(text)
    return path


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path):
    proc = subprocess.run([analyze, "verify", str(installed_copy(tmp_path))], capture_output=True, text=True,
                          timeout=60)
    noise = [line for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and "monitor.service" in line]
    assert proc.returncode == 0 and noise == [], proc.stdout + proc.stderr


@needs_analyze
def test_security_exposure_is_at_most_1_5():
    proc = subprocess.run([analyze, "security", "--offline=yes", str(UNIT)], capture_output=True, text=True,
                          timeout=60)
    match = re.search(r"Overall exposure level for monitor.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr
    assert float(match.group(1)) <= 1.5
