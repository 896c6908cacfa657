"""Storage: the SQLite database.

Owns the connection and its transactions (`database`: the Store class, WAL, busy
timeouts, the feeds and entries tables), the schema and its migrations (`migrations`), and
the cluster tables, where the clusterer's decisions are applied and read back (`clusters`).

Imports point down: records and errors <- pure logic <- storage and I/O adapters <- core
<- cli/daemon. Modules here may import `monitor.types`, `monitor.errors` and the pure
logic whose records and decisions they store (`monitor.feeds.schedule`,
`monitor.feeds.normalize`, `monitor.events`); `clusters` also uses the topic search query
of `monitor.digests.topics`. They never import `monitor.core`, `monitor.cli` or
`monitor.daemon`.
"""
