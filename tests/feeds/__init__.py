"""Tests of monitor.feeds: fetching, the address guard, parsing, normalisation, OPML, poll scheduling."""
