"""The published shapes caf-relay accepts and emits.

Case systems, receiving authorities and admins code against these schemas, so they change only
by adding a new version; the JSON Schema and AsyncAPI files in ``contracts/published`` are
generated from them (``python -m contracts.export``) and a test keeps the two in step.
"""
