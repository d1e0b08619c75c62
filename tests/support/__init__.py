"""What the tests and the benchmark share: servers, the daemon, workers, certificates."""
