"""Idempotency-Keys: the stored records and the running of a handler's work once per key."""
