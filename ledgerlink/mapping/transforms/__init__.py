"""The transforms finance needs, each a pure function in its own module."""
