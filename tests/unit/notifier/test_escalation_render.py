"""Chinese messages from the templates, with task text that cannot break out of them."""

from __future__ import annotations

import pytest

from services.notifier.escalation.engine import (
    Digest,
    TaskCondition,
    evaluate,
    group_into_digests,
)
from services.notifier.escalation.policy import ChannelKind, RecipientRole, default_policy
from services.notifier.escalation.render import format_date_zh, render_message

from ._builders import sh, task

EVIL = "推进<script>alert('x')</script>[点此](http://evil.example) *老旧小区* 改造"


def digest_for(conditions: list[TaskCondition], now_day: int, month: int = 7) -> Digest:
    planned = evaluate(conditions, [], [], [], default_policy(), sh(month, now_day)).notifications
    digests = group_into_digests(planned)
    return next(
        d
        for d in digests
        if d.channel is ChannelKind.EMAIL
        and d.recipient.role is not RecipientRole.SUPERVISING_OFFICE
    )


def red_tasks() -> dict[str, TaskCondition]:
    first = task(
        task_id="T-001",
        task_title=EVIL,
        light="red",
        red_since=sh(7, 1, 0, 5),
        days_overdue=5,
        reasons_zh=("已超过完成时限",),
    )
    second = task(
        task_id="T-002",
        task_title="完善养老服务体系",
        light="red",
        red_since=sh(7, 5, 0, 5),
        days_overdue=1,
        co_units=(),
    )
    return {t.task_id: t for t in (first, second)}


def test_subject_names_level_count_and_reply_date() -> None:
    tasks = red_tasks()
    digest = digest_for(list(tasks.values()), 5)
    message = render_message(digest, tasks)
    assert message.subject_zh == "【督办】2 项重点工作已逾期，请于7月7日前报送进展"


def test_text_names_task_unit_lateness_and_what_to_do() -> None:
    tasks = red_tasks()
    message = render_message(digest_for(list(tasks.values()), 5), tasks)
    text = message.text
    assert text.startswith("市住房城乡建设委：")
    assert "完善养老服务体系" in text
    assert "牵头单位：市住房城乡建设委" in text
    assert "配合单位：市财政局" in text
    assert "分管领导：张副市长" in text
    assert "已逾期 5 天" in text and "已逾期 1 天" in text
    assert "完成时限：2022年6月30日" in text
    assert "书面说明未按期完成原因及整改措施" in text
    assert "报送时限：7月7日前" in text
    assert str(digest_for(list(tasks.values()), 5).digest_id) in text
    # Plain text is not HTML: the title appears exactly as written.
    assert EVIL in text


def test_html_escapes_task_text() -> None:
    tasks = red_tasks()
    html = render_message(digest_for(list(tasks.values()), 5), tasks).html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<table" in html and "完善养老服务体系" in html


def test_markdown_neutralises_task_text() -> None:
    tasks = red_tasks()
    markdown = render_message(digest_for(list(tasks.values()), 5), tasks).markdown
    assert "[点此](" not in markdown
    assert "<script>" not in markdown
    assert "*老旧小区*" not in markdown
    assert "［点此］" in markdown and "＜script＞" in markdown
    # The template's own markup still works.
    assert markdown.startswith("### 【督办】2 项重点工作已逾期")
    assert "**红灯**" in markdown


def test_yellow_reminder_subject() -> None:
    yellow = task(light="yellow", yellow_since=sh(6, 16, 0, 30))
    message = render_message(digest_for([yellow], 16, month=6), {yellow.task_id: yellow})
    assert message.subject_zh == "【催办】1 项重点工作临近时限或进度滞后，请于6月19日前报送进展"


def test_report_due_subject() -> None:
    green = task(light="green", report_due_at=sh(8, 5, 23, 59))
    message = render_message(digest_for([green], 3, month=8), {green.task_id: green})
    assert message.subject_zh == "【催办】1 项重点工作进展报告即将到期，请于8月5日前报送进展"
    assert "进展报告将于8月5日到期" in message.text


def test_newlines_in_titles_do_not_break_the_subject_or_layout() -> None:
    tasks = red_tasks()
    tasks["T-002"] = task(
        task_id="T-002",
        task_title="完善养老\n服务体系",
        light="red",
        red_since=sh(7, 5, 0, 5),
        days_overdue=1,
    )
    message = render_message(digest_for(list(tasks.values()), 5), tasks)
    assert "\n" not in message.subject_zh
    assert "完善养老 服务体系" in message.text


def test_unknown_task_is_an_error() -> None:
    tasks = red_tasks()
    digest = digest_for(list(tasks.values()), 5)
    with pytest.raises(KeyError, match="T-002"):
        render_message(digest, {"T-001": tasks["T-001"]})


def test_date_format() -> None:
    assert format_date_zh(sh(11, 25).date()) == "11月25日"
    assert format_date_zh(sh(6, 30), with_year=True) == "2022年6月30日"
    assert format_date_zh(None) == ""


def test_mixed_yellow_and_report_due_subject() -> None:
    green = task(light="green", report_due_at=sh(8, 5, 23, 59))
    yellow = task(task_id="T-009", light="yellow", yellow_since=sh(8, 1))
    digest = digest_for([green, yellow], 3, month=8)
    message = render_message(digest, {"T-001": green, "T-009": yellow})
    assert message.subject_zh == "【催办】2 项重点工作需加快推进或报送进展，请于8月5日前报送进展"


def test_system_url_links_in_every_format() -> None:
    tasks = red_tasks()
    url = "https://duban.example.gov.cn/my_tasks?from=notice&x=1"
    message = render_message(digest_for(list(tasks.values()), 5), tasks, system_url=url)
    assert f"[督办系统]({url})" in message.markdown
    assert url in message.text
    assert 'href="https://duban.example.gov.cn/my_tasks?from=notice&amp;x=1"' in message.html


def test_system_url_must_be_http() -> None:
    tasks = red_tasks()
    with pytest.raises(ValueError, match="system_url"):
        render_message(digest_for(list(tasks.values()), 5), tasks, system_url="javascript:alert(1)")
