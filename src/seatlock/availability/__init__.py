"""Live seat availability: the layout, the versioned snapshot and the stream of changes."""
