"""Heimdex's Dagster runs: the jobs they run, the tags they carry, the pools they claim, and what a finished
run says of itself."""
