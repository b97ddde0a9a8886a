"""Subcommands of ``optscale``: one module each (see :mod:`optscale.cli`)."""
