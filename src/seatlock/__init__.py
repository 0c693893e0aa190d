"""Seatlock: seat holds in Redis, bookings in PostgreSQL, for high-traffic on-sales."""
