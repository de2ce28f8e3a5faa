"""The JSON:API HTTP service (FastAPI), following Commerce Layer's conventions."""
