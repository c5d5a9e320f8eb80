"""Heimdex's REST facade: the earlier service's API, field for field, over the Dagster pipeline."""
