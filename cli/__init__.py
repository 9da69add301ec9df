"""Command-line entry points (the outermost shell)."""
