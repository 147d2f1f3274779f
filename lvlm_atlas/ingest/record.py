"""`ArxivRecord`: the arXiv metadata of one paper, normalised (bare id, clean text, code links)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from lvlm_atlas.catalog.models import DOI_RE, arxiv_yymm

_VERSION_RE = re.compile(r"^(?P<bare>.+?)(?:v(?P<version>\d+))?$")
_ABS_PREFIX_RE = re.compile(r"^(?:https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:)", re.IGNORECASE)
# Code hosts whose repository links in an abstract or comment are treated as code links.
_CODE_RE = re.compile(
    r"(?:https?://)?(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org|huggingface\.co|codeberg\.org)"
    r"/[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*",
    re.IGNORECASE,
)
_PROJECT_RE = re.compile(r"(?:https?://)?[A-Za-z0-9\-]+\.github\.io(?:/[A-Za-z0-9_.\-~/]*)?", re.IGNORECASE)


def split_arxiv_id(raw: str) -> tuple[str, int | None]:
    """('2403.06764', 2) from 'http://arxiv.org/abs/2403.06764v2', 'arXiv:2403.06764v2', '2403.06764v2'.

    Raises ValueError for anything that is not an arXiv id (new style or old style such as cs/0601001).
    """
    text = _ABS_PREFIX_RE.sub("", raw.strip())
    text = re.sub(r"\.pdf$", "", text)
    m = _VERSION_RE.match(text)
    bare, version = m.group("bare"), m.group("version")
    if arxiv_yymm(bare) is None:
        raise ValueError(f"{raw!r} is not an arXiv id; write e.g. 2403.06764 or cs/0601001")
    return bare, int(version) if version else None


def clean_text(text: str | None) -> str:
    """Collapse the line breaks and runs of spaces of Atom text into single spaces."""
    return re.sub(r"\s+", " ", text or "").strip()


def _strip_url(url: str) -> str:
    url = url.rstrip(".,;:)]}'\"")
    if url.lower().endswith(".git"):
        url = url[:-4]
    return url if url.lower().startswith(("http://", "https://")) else "https://" + url


def code_links(*texts: str | None) -> list[str]:
    """Repository URLs (GitHub, GitLab, Hugging Face, ...) mentioned in the texts, first mention first."""
    out: list[str] = []
    for text in texts:
        for m in _CODE_RE.finditer(text or ""):
            url = _strip_url(m.group(0))
            if url.count("/") >= 4 and url not in out:  # host/owner/repo, not a bare profile
                out.append(url)
    return out


def project_links(*texts: str | None) -> list[str]:
    out: list[str] = []
    for text in texts:
        for m in _PROJECT_RE.finditer(text or ""):
            url = _strip_url(m.group(0))
            if url not in out:
                out.append(url)
    return out


def _one_doi(raw: str) -> str | None:
    doi = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", "", raw.strip(), flags=re.IGNORECASE)
    doi = doi.rstrip(".,;")
    return doi if DOI_RE.match(doi) else None


def split_dois(raw: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(first valid DOI, the other DOIs) of arXiv's DOI field, which may hold several separated by
    spaces, commas or semicolons (e.g. "10.1103/PhysRevD.1.1 10.1103/PhysRevD.1.2")."""
    if not raw or not raw.strip():
        return None, ()
    whole = _one_doi(raw)
    if whole:
        return whole, ()
    dois: list[str] = []
    for part in re.split(r"[\s,;]+", raw.strip()):
        doi = _one_doi(part) if part else None
        if doi and doi not in dois:
            dois.append(doi)
    return (dois[0], tuple(dois[1:])) if dois else (None, ())


def clean_doi(raw: str | None) -> str | None:
    return split_dois(raw)[0]


_WITHDRAWN_RE = re.compile(r"\b(?:withdrawn|withdraw\s+(?:this|the)\s+(?:paper|submission|manuscript))\b",
                           re.IGNORECASE)


def is_withdrawn(comment: str | None) -> bool:
    """arXiv marks a withdrawal in the comment ("This paper has been withdrawn by the author ...")."""
    return bool(comment and _WITHDRAWN_RE.search(comment))


@dataclass(frozen=True)
class ArxivRecord:
    arxiv_id: str                 # without version
    version: int | None
    title: str
    authors: tuple[str, ...]
    abstract: str
    published: dt.date            # first version
    updated: dt.date              # this version
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    primary_category: str = ""
    categories: tuple[str, ...] = ()
    other_dois: tuple[str, ...] = ()   # further DOIs in arXiv's DOI field (only the first is kept)

    @property
    def withdrawn(self) -> bool:
        return is_withdrawn(self.comment)

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"

    @property
    def code_urls(self) -> list[str]:
        return code_links(self.abstract, self.comment)

    @property
    def project_urls(self) -> list[str]:
        return project_links(self.abstract, self.comment)

    @property
    def text(self) -> str:
        return f"{self.title}. {self.abstract}"

    @classmethod
    def from_result(cls, result) -> "ArxivRecord":
        """Build from an `arxiv.Result` (the arxiv package's parsed Atom entry)."""
        bare, version = split_arxiv_id(result.entry_id)
        doi, other_dois = split_dois(result.doi)
        return cls(
            arxiv_id=bare,
            version=version,
            title=clean_text(result.title),
            authors=tuple(clean_text(a.name) for a in result.authors if clean_text(a.name)),
            abstract=clean_text(result.summary),
            published=result.published.date(),
            updated=result.updated.date(),
            comment=clean_text(result.comment) or None,
            journal_ref=clean_text(result.journal_ref) or None,
            doi=doi,
            other_dois=other_dois,
            primary_category=result.primary_category or "",
            categories=tuple(result.categories or ()),
        )
