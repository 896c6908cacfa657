"""Storage: the SQLite database. All SQL lives in this package.

Owns the connection and its transactions (`connection`: WAL, busy timeouts, the SQL
helpers), the schema and its migrations (`migrations`), and one module per table family,
assembled where they are mixins into the `Store` of `database` (which also holds
`survivors`, the one way to follow merged clusters):
- `feeds`: feeds, entries and cycles, what polling reads and writes;
- `clusters`: where the clusterer's decisions are applied and read back;
- `matches`: the topic_matches table, and what matching reads about clusters;
- `outbox`: digests, their items and recipients, and each topic's schedule runs;
- `search`: the full-text queries over entries_fts that topics run;
- `service`: the daemon's own state and the figures `monitor status` reads.
The other packages call these named functions; they hold the transactions
(`with store.write():`) where a decision and the rows it writes must land together.

Imports point down: records and errors <- pure logic <- storage and I/O adapters <- core
<- cli/daemon. Modules here may import `monitor.types`, `monitor.errors` and the pure
logic whose records and decisions they store (`monitor.feeds.schedule`,
`monitor.feeds.normalize`, `monitor.events`); `clusters` also uses the topic search query
of `monitor.digests.topics`. They never import `monitor.core`, `monitor.cli` or
`monitor.daemon`.
"""
