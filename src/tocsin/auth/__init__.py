"""Who is calling: publisher API keys and end-user JWTs."""
