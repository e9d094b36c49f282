"""Schemas of the HTTP API's requests and responses (``/api/v1``), from which OpenAPI is made."""
