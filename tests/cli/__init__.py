"""The shells end to end: the CLI commands (poll, clusters, digests) and the daemon."""
