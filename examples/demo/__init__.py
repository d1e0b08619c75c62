"""``make demo``: every server, the example app under load, perf-exporter, Prometheus and
Alertmanager on this machine, started and removed by one command (see __main__)."""
