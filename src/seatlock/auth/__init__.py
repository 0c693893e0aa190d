"""Accounts and access: passwords, access and refresh tokens, sign-in throttling, the role
guard, and the auth and admin-user routes."""
