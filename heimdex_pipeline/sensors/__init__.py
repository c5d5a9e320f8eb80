"""Sensors: the upload bucket watcher, and the webhook events and sender."""

from heimdex_pipeline.sensors.uploads import upload_sensor
from heimdex_pipeline.sensors.webhooks import webhook_sensor

__all__ = ["upload_sensor", "webhook_sensor"]
