"""The public HTTP entry point of the suite (FastAPI on uvicorn)."""
