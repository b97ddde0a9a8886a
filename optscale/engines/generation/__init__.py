"""Generation engines: backends that stream finished samples for a
:class:`~optscale.ports.GenerateRequest` (``async generate(request)``) — llama.cpp, Hugging
Face transformers, an OpenAI-compatible server, vLLM, and a seeded simulator. Part of the
engines layer, which sits above the pure core and below the services and the CLI: these
modules may import the core (``optscale.types``, ``ports``, ``errors``, ``grading``,
``models``), never ``services``; the generator service and ``optscale.inprocess`` wrap them.
"""
