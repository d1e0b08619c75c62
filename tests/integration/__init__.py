"""Integration tests against real servers the suite starts."""
