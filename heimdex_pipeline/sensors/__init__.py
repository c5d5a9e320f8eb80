"""Sensors: the upload bucket watcher, the sweep of abandoned uploads, and the webhook events and sender."""

from heimdex_pipeline.sensors.upload_sweep import upload_sweep_sensor
from heimdex_pipeline.sensors.uploads import upload_sensor
from heimdex_pipeline.sensors.webhooks import webhook_sensor

__all__ = ["upload_sensor", "upload_sweep_sensor", "webhook_sensor"]
