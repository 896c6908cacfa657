"""What the tests share, so that no test module imports another:

- loopback: the loopback HTTP feed server (routes, or one responder; counts requests in flight);
  rawserver: a raw TCP server for HTTP that misbehaves below the protocol
- smtpserver: aiosmtpd on loopback with scripted replies
- feedfarm: many feeds published in rounds, failing on demand, on LoopbackServer; and a Mailbox
- reliability, scenarios: the fault-injection kit and the scenarios (`python -m tests.support.scenarios`)
- corpus, world: labelled slices of the dev corpus; a store filled by hand; DATA is tests/data
- netguard (+ netguard_site/): the network guard conftest installs; skip_policy: the `-p` plugin
"""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
