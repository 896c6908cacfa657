"""Digests: what a topic matches and the e-mails that tell people about it.

Owns tracked topics and their matches (`topics`), the pure digest builder with its cron
schedules and rendering (`digest`, templates in `templates/`), the outbox that builds
digests into the database and delivers them from there (`outbox`), and the mail
transports (`mailer`: SMTP and maildir).

Imports point down: records and errors <- pure logic <- storage and I/O adapters <- core
<- cli/daemon. Modules here may import `monitor.types`, `monitor.errors`, `monitor.config`,
`monitor.logs`, the pure text helpers of `monitor.feeds.normalize`, `monitor.storage` and
each other. They never import `monitor.events`, `monitor.core`, `monitor.cli` or
`monitor.daemon`.
"""
