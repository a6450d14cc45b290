"""The registry of extension kinds and the plugin host (pluggy hooks, lazy discovery)."""
