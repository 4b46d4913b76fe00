"""The API process: FastAPI on uvicorn, serving keys popped from the Redis pool."""
