"""Reliability under faults: crashes, contention, load, disk full, read-only, SMTP outage, hostile input."""
