"""Configuration, security and errors of the API."""
