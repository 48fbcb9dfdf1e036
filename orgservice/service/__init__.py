"""Use cases: each takes a Caller, checks permissions, enforces rules in one transaction."""
