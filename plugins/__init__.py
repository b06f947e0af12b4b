"""inferwatch's built-in plugins, registered through the same entry points as external ones."""
