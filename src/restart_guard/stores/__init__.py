"""Marker stores. ``base`` defines the protocol; each backend is its own module,
imported only when asked for so that no driver loads unless it is used."""
