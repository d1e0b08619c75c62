"""The perf-exporter test suite (a package, so its support modules import by name)."""
