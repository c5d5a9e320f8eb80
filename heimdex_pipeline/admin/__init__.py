"""Operators' commands: `python -m heimdex_pipeline.admin.prepare` before the services start, and
`python -m heimdex_pipeline.admin.delete` (deleting a video whole, as the API's DELETE does), and
the health checks of docker-compose.yml: the code server's (`python -m heimdex_pipeline.admin.code_server_health`)
and the webserver's (`python -m heimdex_pipeline.admin.webserver_health`)."""
