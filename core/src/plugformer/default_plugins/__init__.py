"""The core's own defaults, registered through the plugin manager like any plugin."""
