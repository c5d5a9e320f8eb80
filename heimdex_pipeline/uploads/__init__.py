"""The upload bucket: which of its objects are new and settled, and which content each holds."""
