"""Reading the local store: ``or-middleware report`` (usage and security), ``tail`` and ``prune``."""
