"""Task catalog importer: the pure reading of task-division documents.

`read_document(bytes, filename)` → `DocumentText` (text, format, reader warnings), within
the read limits of `catalog/limits.py` (`read_document_text`: just text and format);
`parse_document(text, fmt=…, year=…)` → `ParsedDocument`; `diff_catalog(stored, parsed)`
→ what a re-import changes.
No database, no network: the CLI and the HTTP upload persist the result.
"""

from services.tracker.catalog.deadlines import (
    parse_deadline,
    parse_deadline_with_milestones,
)
from services.tracker.catalog.diff import CatalogDiff, diff_catalog
from services.tracker.catalog.errors import (
    CatalogError,
    DocumentTooLarge,
    NotATaskDocument,
    UnreadableDocument,
    UnsupportedFormat,
    YearNotFound,
)
from services.tracker.catalog.model import (
    Deadline,
    Milestone,
    ParsedDocument,
    ParsedTask,
    PlanGoal,
    Target,
    Warning,
)
from services.tracker.catalog.parsing import parse_document
from services.tracker.catalog.readers import DocumentText, read_document, read_document_text
from services.tracker.catalog.units import (
    UnitRegistry,
    normalise_unit_name,
    split_units,
    to_simplified,
    unit_kind,
)

__all__ = [
    "CatalogDiff",
    "CatalogError",
    "Deadline",
    "DocumentText",
    "DocumentTooLarge",
    "Milestone",
    "NotATaskDocument",
    "ParsedDocument",
    "ParsedTask",
    "PlanGoal",
    "Target",
    "UnitRegistry",
    "UnreadableDocument",
    "UnsupportedFormat",
    "Warning",
    "YearNotFound",
    "diff_catalog",
    "normalise_unit_name",
    "parse_deadline",
    "parse_deadline_with_milestones",
    "parse_document",
    "read_document",
    "read_document_text",
    "split_units",
    "to_simplified",
    "unit_kind",
]
