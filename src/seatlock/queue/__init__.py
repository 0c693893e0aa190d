"""Waiting rooms of on-sales: a fair line in Redis, admission at a set pace, and the signed
passes a queued event's hold route asks for."""
