"""The embedded PostgreSQL and Valkey servers: the no-configuration default and the test servers."""
