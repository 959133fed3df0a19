"""``python -m streamal``: the same command line as the ``streamal`` script."""

from streamal.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
