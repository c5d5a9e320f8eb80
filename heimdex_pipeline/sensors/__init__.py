"""Sensors: the upload bucket watcher."""

from heimdex_pipeline.sensors.uploads import upload_sensor

__all__ = ["upload_sensor"]
