"""Catalog imports: upload an official task-division document (admin or office)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile, status

from services.tracker import audit
from services.tracker.access import IMPORT_CATALOG
from services.tracker.auth import Principal
from services.tracker.catalog.errors import CatalogError, DocumentTooLarge
from services.tracker.catalog.limits import MAX_FILE_BYTES
from services.tracker.catalog.parsing import parse_document
from services.tracker.catalog.readers import read_document
from services.tracker.deps import NowDep, UowDep, require
from services.tracker.importer import import_document
from shared.httpguard import error_responses
from shared.textguard import find_forbidden

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])
FORM_FIELDS = frozenset({"file", "dry_run", "year"})


async def only_known_fields(request: Request) -> None:
    """A multipart form, like a JSON body, refuses fields it does not define."""
    form = await request.form()
    extra = sorted(set(form.keys()) - FORM_FIELDS)
    if extra:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[
                {"type": "extra_forbidden", "loc": ["body", name[:100]], "msg": "不允许的字段"}
                for name in extra[:20]
            ],
        )


def _unfit(field: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail={"field": field, "message": message},
    )


@router.post(
    "/imports",
    responses=error_responses(401, 403, 413, 422, 429, 503),
    dependencies=[Depends(only_known_fields)],
)
def import_catalog(
    file: Annotated[UploadFile, File(description="任务分解文件（.txt/.docx/.xlsx）")],
    request: Request,
    uow: UowDep,
    now: NowDep,
    who: Annotated[Principal, Depends(require(IMPORT_CATALOG))],
    dry_run: Annotated[bool, Form(description="只解析，不写入")] = False,
    year: Annotated[int | None, Form(ge=1990, le=2100, description="文件年度")] = None,
) -> dict[str, Any]:
    """Parse a document; unless `dry_run`, write it into the catalog and say what changed."""
    # One byte past the limit is enough for the reader to refuse it (413).
    data = file.file.read(MAX_FILE_BYTES + 1)
    try:
        document = read_document(data, file.filename or "upload.txt")
    except DocumentTooLarge as exc:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail={"field": "file", "message": str(exc)},
        ) from exc
    except CatalogError as exc:
        raise _unfit("file", str(exc)) from exc
    text = document.text
    # Page breaks and vertical tabs are layout; NUL, other controls and bidi overrides are not.
    bad = find_forbidden(text.replace("\x0b", "\n").replace("\x0c", "\n"))
    if bad is not None:
        position, what = bad
        raise _unfit("file", f"文件第 {position} 个字符是{what}")
    try:
        parsed = parse_document(
            text,
            fmt=document.format,
            year=year,
            origins=document.origins,
            notes=document.warnings,
        )
    except CatalogError as exc:
        raise _unfit("file", str(exc)) from exc
    body = parsed.to_json_dict()
    if dry_run:
        return {**body, "import": None}
    result = import_document(uow.session, parsed, now=now)
    audit.record_write(
        uow.session,
        request,
        principal=who,
        now=now,
        object_=parsed.code,
        details={"title": parsed.title[:200], "tasks": len(parsed.tasks)},
    )
    uow.commit()
    return {**body, "import": result.to_json_dict()}
