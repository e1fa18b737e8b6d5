"""Running the app under uvicorn: the HTTP protocol's guards and the server's options."""
