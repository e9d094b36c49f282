"""Persistence: SQLAlchemy tables, Alembic migrations and the one class the service talks to."""
