r"""\`python -m evsys_sdk.cli\`."""

from evsys_sdk.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
