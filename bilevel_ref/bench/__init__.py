"""Benchmarks behind ``bilevel-ref bench NAME`` (one module per NAME, each with ``main(argv)``)."""
