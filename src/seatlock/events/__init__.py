"""Events and what they sell: seat maps, layouts, price categories, listings, images, and
their routes."""
