"""pytest plugin for latentequiv (registered through the ``pytest11`` entry point)."""
