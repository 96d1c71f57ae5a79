"""Benchmarks behind ``iptv-billing bench NAME``; each returns one JSON-able dict of figures."""
