"""Catalog imports: upload an official task-division document (admin or office)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status

from services.tracker.auth import Principal
from services.tracker.catalog.errors import CatalogError
from services.tracker.catalog.parsing import parse_document
from services.tracker.catalog.readers import read_document_text
from services.tracker.deps import NowDep, UowDep, require_roles
from services.tracker.importer import import_document

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


@router.post(
    "/imports",
    responses={
        401: {"description": "未认证"},
        403: {"description": "需要管理员或督查室角色"},
        413: {"description": "文件过大"},
        422: {"description": "文件无法识别为任务分解文件"},
    },
)
def import_catalog(
    file: Annotated[UploadFile, File(description="任务分解文件（.txt/.docx/.xlsx）")],
    uow: UowDep,
    now: NowDep,
    _who: Annotated[Principal, Depends(require_roles("admin", "supervisor"))],
    dry_run: Annotated[bool, Form(description="只解析，不写入")] = False,
    year: Annotated[int | None, Form(ge=1990, le=2100, description="文件年度")] = None,
) -> dict[str, Any]:
    """Parse a document; unless `dry_run`, write it into the catalog and say what changed."""
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"文件超过 {MAX_UPLOAD_BYTES // 1024 // 1024} MB",
        )
    try:
        text, fmt = read_document_text(data, file.filename or "upload.txt")
        parsed = parse_document(text, fmt=fmt, year=year)
    except CatalogError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"field": "file", "message": str(exc)}
        ) from exc
    body = parsed.to_json_dict()
    if dry_run:
        return {**body, "import": None}
    result = import_document(uow.session, parsed, now=now)
    uow.commit()
    return {**body, "import": result.to_json_dict()}
