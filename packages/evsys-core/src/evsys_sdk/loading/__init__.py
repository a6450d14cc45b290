"""Loading and checking: YAML configs, deep validation against the registry, data rows and files."""
