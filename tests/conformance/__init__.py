"""Conformance: tcptrace-py against ground-truth labels and peer tools (issue 8).

``peers`` runs the analyzer and the peer tools over the real captures (cached per session) and
computes every check; ``test_conformance`` prints the agreement table and fails on any
regression from ``baseline.json``. See docs/conformance.md.
"""
