"""Feeds: getting news in, from a URL to stored entries.

Owns fetching over HTTP (`fetch`) behind the address guard (`guard`), reading feed
documents (`parse`, the fast RSS/Atom reader `fastfeed`, the JSON Feed reader `jsonfeed`,
the records they return in `rawfeed`, worker processes with a time budget in `parsepool`),
text and URL normalisation (`normalize`), OPML import and export (`opml`), poll scheduling
(`schedule`) and one poll cycle of fetch, parse and store (`cycle`).

Imports point down: records and errors <- pure logic <- storage and I/O adapters <- core
<- cli/daemon. Modules here may import `monitor.types`, `monitor.errors`, `monitor.config`,
`monitor.logs` and each other; the cycle hands what it parsed to `monitor.storage`. They
never import `monitor.events`, `monitor.digests`, `monitor.core`, `monitor.cli` or
`monitor.daemon`. Parse workers import only what parsing needs.
"""
