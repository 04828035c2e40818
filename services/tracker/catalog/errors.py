"""Errors the catalog importer raises for input it cannot use.

Each carries a Chinese and an English message so the CLI and the HTTP upload can show
the operator the reason without a traceback.
"""

from __future__ import annotations


class CatalogError(Exception):
    """Base class: a document the importer refuses, with a bilingual reason."""

    def __init__(self, message_zh: str, message_en: str) -> None:
        super().__init__(f"{message_zh} / {message_en}")
        self.message_zh = message_zh
        self.message_en = message_en


class NotATaskDocument(CatalogError):
    """The text is readable but is not a task-division document."""

    def __init__(self, detail_zh: str = "", detail_en: str = "") -> None:
        zh = "不是任务分工文件：未找到责任分解表、责任分工括注、工作计划段落或规划目标"
        en = (
            "not a task document: no responsibility table, responsibility clauses, "
            "work-plan paragraphs or plan goals were found"
        )
        if detail_zh:
            zh = f"{zh}（{detail_zh}）"
        if detail_en:
            en = f"{en} ({detail_en})"
        super().__init__(zh, en)


class UnsupportedFormat(CatalogError):
    """The file type cannot be read (only .txt, .docx and .xlsx are)."""

    def __init__(self, filename: str) -> None:
        super().__init__(
            f"不支持的文件格式：{filename}（仅支持 .txt、.docx、.xlsx）",
            f"unsupported file format: {filename} (only .txt, .docx and .xlsx are read)",
        )


class UnreadableDocument(CatalogError):
    """The bytes cannot be decoded or opened as the format their name claims."""


class DocumentTooLarge(CatalogError):
    """The file, or something inside it, is over a read limit (catalog/limits.py)."""


class YearNotFound(CatalogError):
    """Neither the document nor the caller says which year the deadlines belong to."""

    def __init__(self) -> None:
        super().__init__(
            "无法从文件标题或落款日期确定年份，请指定年份（--year）",
            "cannot tell the document year from its title or date; pass it explicitly (--year)",
        )
