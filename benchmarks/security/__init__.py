"""Security benchmarks of issue 10 (PII masking; the prompt-injection corpus)."""
