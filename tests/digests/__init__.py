"""Tests of monitor.digests: topics, the digest builder, the outbox, mail transports."""
