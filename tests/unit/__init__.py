"""Unit tests: no server, no subprocess beyond the CLI."""
