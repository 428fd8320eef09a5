"""The suite's own web pages (Jinja2 templates and static files), the browser SDK and /docs."""
