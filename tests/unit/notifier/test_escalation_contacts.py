"""Contacts: resolving recipients to addresses, and refusing to skip a missing one silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.notifier.escalation.contacts import (
    Contact,
    ContactBook,
    ContactsError,
    ContactsReloader,
    MissingContact,
)
from services.notifier.escalation.engine import Recipient
from services.notifier.escalation.policy import ChannelKind, RecipientRole

CONTACTS = """\
contacts:
  - name: 市住房城乡建设委
    email: zjw@example.gov.cn
    wecom_url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc
  - name: 市住房城乡建设委
    role: lead_unit_leadership
    email: zjw-leader@example.gov.cn
    dingtalk_url: https://oapi.dingtalk.com/robot/send?access_token=xyz
    dingtalk_secret: SECxyz
  - name: 市政府办公厅督查室
    role: supervising_office
    email: dcs@example.gov.cn
    webhook_url: https://dcs.example.gov.cn/hooks/duban
    webhook_secret: s3cret
"""

UNIT = Recipient(RecipientRole.RESPONSIBLE_UNITS, "市住房城乡建设委")
LEADERSHIP = Recipient(RecipientRole.LEAD_UNIT_LEADERSHIP, "市住房城乡建设委")
OFFICE = Recipient(RecipientRole.SUPERVISING_OFFICE, "市政府办公厅督查室")


@pytest.fixture
def book(tmp_path: Path) -> ContactBook:
    path = tmp_path / "contacts.yaml"
    path.write_text(CONTACTS, encoding="utf-8")
    return ContactBook.load(path)


def test_role_specific_entry_wins_over_the_generic_one(book: ContactBook) -> None:
    assert book.resolve(UNIT, ChannelKind.EMAIL).email == "zjw@example.gov.cn"
    assert book.resolve(LEADERSHIP, ChannelKind.EMAIL).email == "zjw-leader@example.gov.cn"


def test_addresses_and_secrets(book: ContactBook) -> None:
    dingtalk = book.resolve_address(LEADERSHIP, ChannelKind.DINGTALK)
    assert dingtalk.address.startswith("https://oapi.dingtalk.com/")
    assert dingtalk.secret == "SECxyz"
    webhook = book.resolve_address(OFFICE, ChannelKind.WEBHOOK)
    assert (webhook.address, webhook.secret) == ("https://dcs.example.gov.cn/hooks/duban", "s3cret")
    assert book.resolve_address(UNIT, ChannelKind.WECOM).secret is None


def test_unknown_recipient_names_recipient_and_channel(book: ContactBook) -> None:
    leader = Recipient(RecipientRole.SUPERVISING_LEADER, "张副市长")
    with pytest.raises(MissingContact) as caught:
        book.resolve(leader, ChannelKind.EMAIL)
    message = str(caught.value)
    assert "张副市长" in message and "email" in message and "supervising_leader" in message
    assert caught.value.recipient == leader
    assert caught.value.channel is ChannelKind.EMAIL


def test_entry_without_that_channel(book: ContactBook) -> None:
    with pytest.raises(MissingContact, match="no dingtalk address"):
        book.resolve(UNIT, ChannelKind.DINGTALK)


def test_webhook_without_secret_is_missing() -> None:
    book = ContactBook.from_mapping({"督查室": Contact(webhook_url="https://x.example/h")})
    office = Recipient(RecipientRole.SUPERVISING_OFFICE, "督查室")
    with pytest.raises(MissingContact, match="webhook_secret"):
        book.resolve(office, ChannelKind.WEBHOOK)


def test_from_mapping_accepts_names_and_role_pairs() -> None:
    book = ContactBook.from_mapping(
        {
            "市财政局": Contact(email="czj@example.gov.cn"),
            ("lead_unit_leadership", "市财政局"): Contact(email="czj-leader@example.gov.cn"),
        }
    )
    unit = Recipient(RecipientRole.RESPONSIBLE_UNITS, "市财政局")
    leadership = Recipient(RecipientRole.LEAD_UNIT_LEADERSHIP, "市财政局")
    assert book.resolve(unit, ChannelKind.EMAIL).email == "czj@example.gov.cn"
    assert book.resolve(leadership, ChannelKind.EMAIL).email == "czj-leader@example.gov.cn"


def test_missing_lists_every_gap(book: ContactBook) -> None:
    leader = Recipient(RecipientRole.SUPERVISING_LEADER, "张副市长")
    gaps = book.missing(
        [(UNIT, ChannelKind.EMAIL), (leader, ChannelKind.EMAIL), (UNIT, ChannelKind.WEBHOOK)]
    )
    assert [(g.recipient.name, g.channel) for g in gaps] == [
        ("张副市长", ChannelKind.EMAIL),
        ("市住房城乡建设委", ChannelKind.WEBHOOK),
    ]


def test_bad_url_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    path.write_text(CONTACTS.replace("https://dcs.example", "ftp://dcs.example"), "utf-8")
    with pytest.raises(ContactsError) as caught:
        ContactBook.load(path)
    assert caught.value.line == 13
    assert "contacts[2].webhook_url" in str(caught.value)


def test_bad_email_and_unknown_key(tmp_path: Path) -> None:
    text = CONTACTS.replace("dcs@example.gov.cn", "not-an-address").replace(
        "    dingtalk_secret", "    phone: 123\n    dingtalk_secret"
    )
    with pytest.raises(ContactsError) as caught:
        ContactBook.from_yaml_text(text, "contacts.yaml")
    assert sorted(p.line for p in caught.value.problems) == [9, 13]


def test_duplicate_entry_names_its_line() -> None:
    text = CONTACTS + (
        "  - name: 市政府办公厅督查室\n    role: supervising_office\n    email: a@b.cn\n"
    )
    with pytest.raises(ContactsError, match="listed twice") as caught:
        ContactBook.from_yaml_text(text, "contacts.yaml")
    assert caught.value.line == 15


def _touch(path: Path, text: str, bump: int) -> None:
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    # Coarse file-system timestamps: make each rewrite visible to the reloader regardless.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


def test_contacts_reloader_without_a_path_holds_an_empty_book() -> None:
    reloader = ContactsReloader(None)
    assert reloader.path is None
    assert reloader.book.contact(Recipient(RecipientRole.LEAD_UNITS, "市财政局")) is None
    assert reloader.refresh() is False


def test_contacts_reloader_picks_up_edits_and_keeps_the_book_on_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    _touch(path, CONTACTS, 0)
    reloader = ContactsReloader(path)
    office = Recipient(RecipientRole.SUPERVISING_OFFICE, "市政府办公厅督查室")
    assert reloader.book.resolve(office, ChannelKind.EMAIL).email == "dcs@example.gov.cn"
    assert reloader.refresh() is False  # untouched
    _touch(path, CONTACTS.replace("dcs@example.gov.cn", "dcs2@example.gov.cn"), 1)
    assert reloader.refresh() is True
    edited = reloader.book
    assert edited.resolve(office, ChannelKind.EMAIL).email == "dcs2@example.gov.cn"
    _touch(path, "contacts: [", 2)
    with pytest.raises(ContactsError):
        reloader.refresh()
    assert reloader.book is edited
