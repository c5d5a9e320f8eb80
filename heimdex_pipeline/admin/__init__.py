"""Operators' commands: `python -m heimdex_pipeline.admin.prepare` before the services start, and
`python -m heimdex_pipeline.admin.delete` (deleting a video whole, as the API's DELETE does)."""
