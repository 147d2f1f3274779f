"""Well-known locations in the repository."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "catalog"
PAPERS = CATALOG / "papers"
TAXONOMY = CATALOG / "taxonomy.yaml"
SCHEMA_DIR = CATALOG / "schema"
PAPER_SCHEMA = SCHEMA_DIR / "paper.schema.json"
METHODS = ROOT / "methods"
