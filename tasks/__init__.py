"""Celery tasks: thin wrappers that call ``copying``."""
