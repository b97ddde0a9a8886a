"""Engines: the model backends that generate and score samples (:mod:`.generation`,
:mod:`.scoring`). This layer sits above the pure core (``optscale.types``, ``ports``,
``errors``, ``grading``, ``models``) and below the services and the CLI: engines may import
the core, never ``services``; the gRPC servers, ``optscale.inprocess`` and the benchmarks
import engines, never the other way round. Heavy model libraries (torch, transformers,
llama-cpp, vLLM, httpx) are imported only by the engine modules that need them.
"""
