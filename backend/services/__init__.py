"""Business logic shared by the API and the worker: keyword-only functions, no FastAPI."""
