"""An example Alertmanager configuration matching the generated alerts.

Routes by ``severity`` with matchers, groups by alertname/job/instance, and inhibits a warning
while its critical twin (same alert name and identifying labels) fires. The webhook URLs point
at a local receiver; replace them with your own.
"""

from __future__ import annotations

from typing import Any

from exporter.mixin.catalog import SIGNALS
from exporter.mixin.thresholds import Thresholds

WEBHOOK_BASE = "http://127.0.0.1:5001"


def identifying_labels() -> list[str]:
    """Every label that tells two series of one alert apart (missing labels compare equal)."""
    labels: dict[str, None] = {"alertname": None}
    for signal in SIGNALS:
        labels.update(dict.fromkeys(signal.labels))
    return list(labels)


def alertmanager_config(t: Thresholds, webhook_base: str = WEBHOOK_BASE) -> dict[str, Any]:
    def receiver(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "webhook_configs": [{"url": f"{webhook_base}/{name}", "send_resolved": True}],
        }

    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "job", "instance"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "matchers": [f'severity="{t.severity_critical}"'],
                    "receiver": "critical",
                    "repeat_interval": "1h",
                },
                {"matchers": [f'severity="{t.severity_warning}"'], "receiver": "warning"},
                {"matchers": ['severity="info"'], "receiver": "info", "repeat_interval": "24h"},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": [f'severity="{t.severity_critical}"'],
                "target_matchers": [f'severity="{t.severity_warning}"'],
                "equal": identifying_labels(),
            }
        ],
        "receivers": [receiver(n) for n in ("default", "critical", "warning", "info")],
    }
