"""Pure wire-format parsing for LLM APIs: no I/O, no OpenTelemetry."""
