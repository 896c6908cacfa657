"""Tests of monitor.events: reading, weighing, similarity, the clusterer, the weighing pool."""
