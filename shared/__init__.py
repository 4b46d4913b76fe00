"""Code both mini-forge processes use: settings, the key codec, the Redis pool, logging."""
