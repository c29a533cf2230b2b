"""Mail backends of the project's own."""
