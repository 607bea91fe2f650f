"""placeholder: filled in by the app-plugin work."""
