"""Scoring engines: the backends that score generated samples
(``async score_batch(items)``) — the log-prob confidence scorer, a process reward model on
transformers or vLLM, and a seeded simulator. Part of the engines layer, which sits above
the pure core and below the services and the CLI: these modules may import the core
(``optscale.types``, ``errors``, ``models``), never ``services``; the verifier service and
``optscale.inprocess`` wrap them.
"""
