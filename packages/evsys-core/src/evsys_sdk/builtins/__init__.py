"""Core's own plugin (``hooks``) and the built-in extensions it registers: mock backend, metrics, verifiers,
transforms, data and log stores, and the verifier functions."""
