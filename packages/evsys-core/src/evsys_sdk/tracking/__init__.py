"""The tracking store, the workspace cache, stored records and their conclusions."""
