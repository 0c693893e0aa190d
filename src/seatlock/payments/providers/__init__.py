"""The payment providers: one interface, a registry that builds them from the settings, and
one adapter per provider."""
