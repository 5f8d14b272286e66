"""Example agencies' own systems, built on the worker SDK (motcua.worker)."""
