"""The refiller process: reserves ranges from the counter store and fills the Redis pool."""
