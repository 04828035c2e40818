"""`duban`: the tracker's command line (import documents, manage API keys, migrate)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.tracker.settings import TrackerSettings

app = typer.Typer(help="督办 (Duban) 命令行", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="API 密钥管理", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _uow(settings: TrackerSettings):  # type: ignore[no-untyped-def]
    from shared.db import UnitOfWork, make_engine, make_session_factory

    return UnitOfWork(make_session_factory(make_engine(settings.sqlalchemy_url, pool_size=1)))


@app.command("migrate")
def migrate() -> None:
    """Apply the tracker's and the notifier's database migrations."""
    from services.notifier import migrate as notifier_migrate
    from services.tracker import migrate as tracker_migrate

    tracker_migrate.main()
    notifier_migrate.main()
    typer.echo("数据库迁移完成 (migrations applied)")


@app.command("import")
def import_document(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="文件 (.txt/.docx/.xlsx)")
    ],
    year: Annotated[int | None, typer.Option(help="文件年度，默认从标题或日期读取")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只解析，不写入")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """Read a task-division document into the catalog."""
    from services.tracker.catalog.errors import CatalogError
    from services.tracker.catalog.parsing import parse_document
    from services.tracker.catalog.readers import check_file_size, read_document
    from services.tracker.importer import import_document as store

    try:
        check_file_size(path.stat().st_size, path.name)
        document = read_document(path.read_bytes(), path.name)
        parsed = parse_document(
            document.text,
            fmt=document.format,
            year=year,
            origins=document.origins,
            notes=document.warnings,
        )
    except CatalogError as exc:
        typer.echo(f"错误 (error): {path.name}: {exc.message_zh}", err=True)
        raise typer.Exit(2) from exc
    if dry_run:
        if as_json:
            json.dump(parsed.to_json_dict(), sys.stdout, ensure_ascii=False, indent=2)
            typer.echo()
        else:
            _print_summary(parsed)
        return
    settings = TrackerSettings()
    with _uow(settings) as uow:
        result = store(uow.session, parsed, now=settings.clock().now())
        uow.commit()
    if as_json:
        json.dump(
            {"import": result.to_json_dict(), **parsed.to_json_dict()},
            sys.stdout,
            ensure_ascii=False,
            indent=2,
            default=str,
        )
        typer.echo()
        return
    _print_summary(parsed)
    typer.echo(
        f"写入：新增 {len(result.added)} 项，更新 {len(result.changed)} 项，"
        f"未变 {len(result.unchanged)} 项，文件中已无 {len(result.missing)} 项"
    )
    for code, fields in result.changed:
        typer.echo(f"  更新 {code}: {', '.join(fields)}")
    for code in result.missing:
        typer.echo(f"  文件中已无 {code}（保留历史，未删除）")


def _print_summary(parsed: object) -> None:
    from services.tracker.catalog.model import ParsedDocument
    from services.tracker.importer import summarise

    assert isinstance(parsed, ParsedDocument)
    typer.echo(
        f"《{parsed.title}》 {parsed.year} 年，格式 {parsed.format}，"
        f"任务 {len(parsed.tasks)} 项，规划目标 {len(parsed.goals)} 项"
    )
    for heading, counts in (
        ("按主要任务", "section"),
        ("按牵头单位", "lead_unit"),
        ("按时限类型", "deadline_kind"),
    ):
        typer.echo(f"{heading}:")
        for name, count in summarise(parsed)[counts].most_common():
            typer.echo(f"  {name}: {count}")
    if parsed.warnings:
        typer.echo(f"警告 {len(parsed.warnings)} 条:")
        for warning in parsed.warnings:
            # Without a line the message names its place (a sheet row) or the whole file.
            where = f"第 {warning.line} 行: " if warning.line else ""
            typer.echo(f"  {where}{warning.message}")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="unit / supervisor / leader / admin / operator")],
    unit: Annotated[str | None, typer.Option(help="单位名称（unit 角色必填）")] = None,
    leader: Annotated[str | None, typer.Option(help="分管领导姓名（leader 角色必填）")] = None,
    label: Annotated[str, typer.Option(help="备注")] = "",
    days: Annotated[int, typer.Option(min=0, max=3650, help="有效天数；0 为不过期")] = 365,
) -> None:
    """Create an API key; the key is printed once and only its hash is kept."""
    from services.tracker import audit
    from services.tracker.keys import UnknownKeyOrUnit, create_key

    settings = TrackerSettings()
    now = settings.clock().now()
    expires = now + dt.timedelta(days=days) if days else None
    try:
        with _uow(settings) as uow:
            issued = create_key(
                uow.session,
                role=role,
                unit_name=unit,
                leader=leader,
                label=label,
                expires_at=expires,
                now=now,
            )
            audit.record_console(
                uow.session,
                action="keys.create",
                object_=issued.key_id,
                now=now,
                details={"role": role, "unit": unit, "leader": leader},
            )
            uow.commit()
    except (UnknownKeyOrUnit, ValueError) as exc:
        typer.echo(f"错误 (error): {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"key_id: {issued.key_id}")
    typer.echo(f"key:    {issued.plaintext}")
    typer.echo(f"有效期至: {expires.isoformat() if expires else '不过期'}")
    typer.echo("请妥善保存：密钥只显示这一次。")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    from services.tracker.keys import list_keys

    settings = TrackerSettings()
    now = settings.clock().now()
    with _uow(settings) as uow:
        for key in list_keys(uow.session):
            if key.revoked_at:
                state = "已吊销"
            elif key.expires_at and key.expires_at <= now:
                state = "已过期"
            else:
                state = "有效"
            scope = key.unit.name if key.unit else key.leader or "-"
            expires = key.expires_at.isoformat() if key.expires_at else "不过期"
            typer.echo(f"{key.key_id}\t{key.role}\t{scope}\t{state}\t{expires}\t{key.label}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="密钥编号 key_id")]) -> None:
    """Revoke an API key; intake stops accepting it within seconds."""
    from services.tracker import audit
    from services.tracker.keys import UnknownKeyOrUnit, revoke_key

    settings = TrackerSettings()
    now = settings.clock().now()
    try:
        with _uow(settings) as uow:
            revoke_key(uow.session, key_id=key_id, now=now)
            audit.record_console(uow.session, action="keys.revoke", object_=key_id, now=now)
            uow.commit()
    except UnknownKeyOrUnit as exc:
        typer.echo(f"错误 (error): {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"已吊销 {key_id}")


if __name__ == "__main__":
    app()
