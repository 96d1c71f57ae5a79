"""The HTTP API: FastAPI app, problem+json errors, API keys, idempotency and pagination."""
