"""Hostile and awkward Office files, built in memory by the tests (no binaries committed).

Each builder starts from a real file written by python-docx or openpyxl and rewrites
members of its zip, so everything but the hostile part is what Office files look like.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from docx import Document
from openpyxl import Workbook

from .seeds import xlsx_bytes

SHEET = "xl/worksheets/sheet1.xml"
BODY = "word/document.xml"
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'

TASK_HEADER: list[object] = ["序号", "主要任务", "重点工作", "完成时限", "责任单位"]
TASK_ROWS: list[list[object]] = [
    ["2023年重点工作责任分解表"],
    TASK_HEADER,
    [1, "一、稳增长", "推进财政改革。", "6月底前完成", "市财政局\n市税务局"],
    [2, None, "扩大消费。", "年底前完成", "市商务局"],
]

Member = bytes | Callable[[bytes], bytes] | Iterable[bytes]


def rewrite(data: bytes, members: dict[str, Member]) -> bytes:
    """The zip with some members replaced, edited (a function of the old bytes) or added.

    An iterable of chunks is streamed into the archive, so a member far larger than memory
    can be written while the archive stays small.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        names = source.namelist()
        for name in names + [name for name in members if name not in names]:
            new = members.get(name)
            if new is None:
                target.writestr(name, source.read(name))
            elif isinstance(new, bytes):
                target.writestr(name, new)
            elif callable(new):
                target.writestr(name, new(source.read(name)))
            else:
                with target.open(name, "w", force_zip64=True) as stream:
                    for chunk in new:
                        stream.write(chunk)
    return out.getvalue()


def plain_docx() -> bytes:
    """A small valid .docx with one paragraph."""
    document = Document()
    document.add_paragraph("2023年重点工作")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def plain_xlsx() -> bytes:
    """A small valid task workbook."""
    return xlsx_bytes(TASK_ROWS)


def huge_dimension_xlsx(*, declare: bool = True, cell: bool = True) -> bytes:
    """A ~5 KB workbook that declares A1:XFD1048576 and/or holds a cell at XFD1048576."""

    def edit(xml: bytes) -> bytes:
        text = xml.decode()
        if declare:
            text = re.sub(r'<dimension ref="[^"]*"/>', '<dimension ref="A1:XFD1048576"/>', text)
        if cell:
            text = text.replace(
                "</sheetData>",
                '<row r="1048576"><c r="XFD1048576" t="n"><v>1</v></c></row></sheetData>',
            )
        return text.encode()

    return rewrite(plain_xlsx(), {SHEET: edit})


def zip_bomb(kind: str, inflated: int = 30 * 1024 * 1024) -> bytes:
    """A package whose main XML part is padded with whitespace: ~1000:1 expansion."""
    if kind == "xlsx":

        def padded_sheet(xml: bytes) -> Iterable[bytes]:
            head, tail = xml.split(b"<sheetData>", 1)
            yield head + b"<sheetData>"
            yield from _repeat(b" ", inflated)
            yield tail

        return rewrite(plain_xlsx(), {SHEET: padded_sheet(_read(plain_xlsx(), SHEET))})

    def padded_body() -> Iterable[bytes]:
        yield f"<w:document {_W}><w:body>".encode()
        yield from _repeat(b" ", inflated)
        yield b"<w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>"

    return rewrite(plain_docx(), {BODY: padded_body()})


def text_node_docx(size: int = 200 * 1024 * 1024) -> bytes:
    """A small .docx whose body holds one text node of `size` characters (streamed)."""

    def body() -> Iterable[bytes]:
        yield f"<w:document {_W}><w:body><w:p><w:r><w:t>".encode()
        yield from _repeat(b"a", size)
        yield b"</w:t></w:r></w:p></w:body></w:document>"

    return rewrite(plain_docx(), {BODY: body()})


def malformed_docx() -> bytes:
    """A .docx whose document.xml stops in the middle of an element."""
    return rewrite(plain_docx(), {BODY: lambda xml: xml[: len(xml) // 2]})


def malformed_xlsx() -> bytes:
    """A workbook whose sheet XML has a tag closed by the wrong name."""
    return rewrite(plain_xlsx(), {SHEET: lambda xml: xml.replace(b"</row>", b"</rox>", 1)})


def entity_bomb_docx() -> bytes:
    """A .docx whose document.xml is a billion-laughs entity bomb."""
    entities = ['<!ENTITY a0 "laugh">'] + [
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
    ]
    body = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [{"".join(entities)}]>'
        f"<w:document {_W}><w:body><w:p><w:r><w:t>&a9;</w:t></w:r></w:p></w:body></w:document>"
    )
    return rewrite(plain_docx(), {BODY: body.encode()})


def formulas_and_merges_xlsx() -> bytes:
    """Formulas with and without a cached value; a section and a unit merged over two rows.

    D3 is a formula openpyxl writes without a cached value; A4 (=A3+1) gets its cached 2
    the way Excel saves it. B3:B4 (主要任务) and E3:E4 (责任单位) are merged; A1:E1 (the
    title) is merged across.
    """
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "任务"
    for row in (
        ["2023年重点工作责任分解表"],
        TASK_HEADER,
        [1, "一、稳增长", "推进财政改革。", "=DATE(2023,6,30)", "市财政局"],
        ["=A3+1", None, "扩大有效投资。", "年底前完成", None],
    ):
        sheet.append(row)
    for merged in ("A1:E1", "B3:B4", "E3:E4"):
        sheet.merge_cells(merged)
    buffer = io.BytesIO()
    workbook.save(buffer)

    def cache_a4(xml: bytes) -> bytes:
        return xml.replace(b"<f>A3+1</f><v></v>", b"<f>A3+1</f><v>2</v>")

    return rewrite(buffer.getvalue(), {SHEET: cache_a4})


def several_sheets_xlsx() -> bytes:
    """A task sheet with an unnumbered row and a 合计 row, then a contacts sheet."""
    workbook = Workbook()
    tasks = workbook.active
    tasks.title = "任务"
    for row in (
        *TASK_ROWS,
        [None, None, "以上任务按季度调度。", None, None],
        ["合计", None, None, None, "2项"],
    ):
        tasks.append(row)
    contacts = workbook.create_sheet("联系人")
    for row in (["姓名", "电话", "单位"], ["张三", "010-12345678", "市财政局"]):
        contacts.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    """Write a built file and return its path."""
    path.write_bytes(data)
    return path


def _repeat(unit: bytes, size: int, chunk: int = 1024 * 1024) -> Iterable[bytes]:
    block = unit * chunk
    left = size
    while left > 0:
        yield block[:left]
        left -= len(block)


def _read(data: bytes, member: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(data)).read(member)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB$", Path("/proc/self/status").read_text(), re.M)
    assert match is not None, field
    return int(match.group(1))


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], int]]:
    """How far this process's peak RSS rose above its RSS at the start of the block, in MiB.

    Linux: writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS,
    so the measure is this block's own high-water mark, not an earlier test's.
    """
    Path("/proc/self/clear_refs").write_text("5")
    start = _status_kib("VmRSS")
    yield lambda: (_status_kib("VmHWM") - start) // 1024
