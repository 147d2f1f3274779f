"""The website generator: validated catalog -> Markdown pages and data files for MkDocs.

`build_site(catalog, out_dir)` writes everything; `registry` is how other parts of the project add
pages and paper-page sections; `escape` keeps data inert.
"""
from lvlm_atlas.site.build import BuildReport, build_site  # noqa: F401
