"""The web UI and HTTP API (starlette); templates and static files live in top-level web/."""
