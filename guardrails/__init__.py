"""Guardrails that wrap any Generator: a system-prompt guardrail and self-reflection moderation.

The implementation lands with the generator/guardrails issue; the retrieval layer's Generator
protocol (retrieval.generator) is the interface they wrap.
"""
