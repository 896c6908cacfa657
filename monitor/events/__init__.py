"""Events: grouping reports of one real-world event across outlets.

Owns reading an entry's text (`reading`, `textfeatures`), what the stream teaches about
its words and the weighing of each entry with it (`weighing`), document features and
pairwise similarity (`similarity`), the incremental clusterer that decides (`clusterer`),
the long-lived index of names that links follow-ups months later (`followups`), and
weighing entries ahead of the decisions in a worker process (`weighpool`).

Pure logic: records in, decisions out; no database, no network, no clock. Imports point
down: records and errors <- pure logic <- storage and I/O adapters <- core <- cli/daemon.
Modules here may import `monitor.types`, `monitor.errors`, `monitor.logs` and each other;
`weighpool` shares the parse pool's worker process context (`monitor.feeds.parsepool`).
They never import `monitor.storage`, `monitor.digests`, `monitor.core`, `monitor.cli` or
`monitor.daemon`.
"""
