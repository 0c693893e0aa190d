"""Bookings: a hold turned into a booking by one PostgreSQL transaction, the seat-state
writes that bookings, payments and the expiry sweep share, cancellation, and the routes."""
