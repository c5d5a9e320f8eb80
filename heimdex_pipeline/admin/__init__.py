"""Operators' commands: `python -m heimdex_pipeline.admin.prepare` before the services start, and
`python -m heimdex_pipeline.admin.delete` (deleting a video whole, as the API's DELETE does), and
the code server's health check of docker-compose.yml (`python -m heimdex_pipeline.admin.code_server_health`)."""
