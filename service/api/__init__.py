"""The HTTP API under ``/api/v1``: one blueprint per resource, each guarded by role and authority.

``service.web`` builds the app; ``service.api.guard`` says who may call what; the request and
response schemas live in ``contracts.api`` so that OpenAPI is generated from them.
"""
