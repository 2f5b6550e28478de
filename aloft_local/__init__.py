"""The embedded local stack behind `make run` (never deployed: it lives outside chalicelib)."""
