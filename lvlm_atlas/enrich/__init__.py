"""Semantic Scholar enrichment: citation counts and reference lists for catalog papers.

Data flow: catalog papers -> `client` (HTTP via the `semanticscholar` package, rate-limited, retried,
validated) -> `records` (pure functions: answers -> stored records, venue suggestions) -> `store`
(catalog/enrichment/semantic_scholar.json, written atomically and deterministically). `runner` ties
them together and makes a run resumable.
"""
