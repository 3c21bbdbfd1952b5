"""Plugin entry point of agentlightning-local (the ``agl local`` commands come with the CLI hook)."""
