"""Scheduled arXiv ingestion: find, deduplicate, classify and propose new catalog papers.

Data flows one way:
  catalog/ingest.yaml (queries)  -> fetch.py (arXiv API, retries)  -> record.py (ArxivRecord)
  -> dedup.py (catalog, rejected list, this run)  -> relevance.py / classify.py (offline, catalog-trained)
  -> write.py (one schema-valid YAML per candidate, atomic)  -> report.py (Markdown for the PR body).
`pipeline.py` wires these together; `evaluate.py` measures the classifier and the relevance filter.
"""
