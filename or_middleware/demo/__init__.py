"""Demo support: a fake LLM upstream used by `or-middleware demo` and the tests."""
