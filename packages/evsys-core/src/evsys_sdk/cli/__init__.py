"""The command line: `evsys` (``evsys_sdk.cli.main``) and its verbs."""
