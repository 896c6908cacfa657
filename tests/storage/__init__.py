"""Tests of monitor.storage: the database, its migrations and its table families."""
