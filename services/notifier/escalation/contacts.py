"""Where each recipient is reached: e-mail address, webhook and group-robot URLs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.notifier.escalation.engine import Recipient
from services.notifier.escalation.policy import ChannelKind, RecipientRole
from shared.reloader import FileReloader
from shared.yamlmarks import MarkedFileError, Problem, load_marked


class ContactsError(MarkedFileError):
    """The contacts file is malformed; the message names the file, line and column."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("contacts file", problems)


class MissingContact(LookupError):
    """No address for a recipient on a channel; never skipped silently."""

    def __init__(self, recipient: Recipient, channel: ChannelKind, detail: str) -> None:
        self.recipient = recipient
        self.channel = channel
        super().__init__(
            f"no {channel.value} contact for {recipient.name} ({recipient.role.value}): {detail}"
        )


def _check_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    return url


class Contact(BaseModel):
    """The addresses one recipient can be reached at; any of them may be absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
    webhook_url: str | None = None
    wecom_url: str | None = None
    dingtalk_url: str | None = None
    dingtalk_secret: str | None = Field(default=None, min_length=1)
    webhook_secret: str | None = Field(default=None, min_length=1)

    @field_validator("webhook_url", "wecom_url", "dingtalk_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return _check_url(url)

    def address_for(self, channel: ChannelKind) -> str | None:
        """The address this contact has for a channel, if any."""
        return {
            ChannelKind.EMAIL: self.email,
            ChannelKind.WEBHOOK: self.webhook_url,
            ChannelKind.WECOM: self.wecom_url,
            ChannelKind.DINGTALK: self.dingtalk_url,
            ChannelKind.INBOX: None,
        }[channel]

    def secret_for(self, channel: ChannelKind) -> str | None:
        """The signing secret this contact has for a channel, if any."""
        if channel is ChannelKind.WEBHOOK:
            return self.webhook_secret
        if channel is ChannelKind.DINGTALK:
            return self.dingtalk_secret
        return None


class _ContactEntry(Contact):
    name: str = Field(min_length=1)
    # Absent: the entry serves every role with that name (a unit's working contact).
    role: RecipientRole | None = None


class _ContactsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contacts: tuple[_ContactEntry, ...]


_FIELD_NAMES = (
    "email",
    "webhook_url",
    "wecom_url",
    "dingtalk_url",
    "dingtalk_secret",
    "webhook_secret",
)


@dataclass(frozen=True)
class ResolvedContact:
    """The address (and secret) to use for one recipient on one channel."""

    recipient: Recipient
    channel: ChannelKind
    address: str
    secret: str | None
    contact: Contact


class ContactBook:
    """Contacts by (role, name), falling back to entries for the name under any role."""

    def __init__(self, entries: Mapping[tuple[RecipientRole | None, str], Contact]) -> None:
        self._entries = dict(entries)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str | tuple[RecipientRole | str, str], Contact]) -> Self:
        """Build from a unit directory: keys are a name, or a (role, name) pair."""
        entries: dict[tuple[RecipientRole | None, str], Contact] = {}
        for key, contact in mapping.items():
            if isinstance(key, str):
                entries[(None, key)] = contact
            else:
                role, name = key
                entries[(RecipientRole(role), name)] = contact
        return cls(entries)

    @classmethod
    def from_yaml_text(cls, text: str, source: str = "<contacts>") -> Self:
        """Parse a contacts YAML document; raise ContactsError naming the line."""
        try:
            document = load_marked(text, source, "contacts file")
        except MarkedFileError as exc:
            raise ContactsError(list(exc.problems)) from exc
        try:
            parsed = _ContactsFile.model_validate(document.data)
        except ValidationError as exc:
            raise ContactsError(document.problems_from(exc)) from exc
        entries: dict[tuple[RecipientRole | None, str], Contact] = {}
        problems: list[Problem] = []
        for index, entry in enumerate(parsed.contacts):
            key = (entry.role, entry.name)
            if key in entries:
                problems.append(document.problem(("contacts", index, "name"), "listed twice"))
                continue
            entries[key] = Contact(**{name: getattr(entry, name) for name in _FIELD_NAMES})
        if problems:
            raise ContactsError(problems)
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a contacts YAML file; raise ContactsError naming file and line."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ContactsError([Problem(str(file), 1, 1, "", f"cannot read: {exc}")]) from exc
        return cls.from_yaml_text(text, str(file))

    def contact(self, recipient: Recipient) -> Contact | None:
        """The most specific entry for a recipient, if any."""
        return self._entries.get((recipient.role, recipient.name)) or self._entries.get(
            (None, recipient.name)
        )

    def resolve(self, recipient: Recipient, channel: ChannelKind) -> Contact:
        """The contact for a recipient on a channel; raise MissingContact if it lacks one."""
        return self.resolve_address(recipient, channel).contact

    def resolve_address(self, recipient: Recipient, channel: ChannelKind) -> ResolvedContact:
        """The address (and secret) for a recipient on a channel; raise MissingContact."""
        if channel is ChannelKind.INBOX:
            # Everyone named by a task or the policy has an inbox: it is keyed by the name.
            return ResolvedContact(recipient, channel, recipient.name, None, Contact())
        contact = self.contact(recipient)
        if contact is None:
            raise MissingContact(recipient, channel, "not in the contact book")
        address = contact.address_for(channel)
        if not address:
            raise MissingContact(recipient, channel, f"the entry has no {channel.value} address")
        secret = contact.secret_for(channel)
        if channel is ChannelKind.WEBHOOK and not secret:
            # Receivers verify the signature; an unsigned delivery would be refused anyway.
            raise MissingContact(recipient, channel, "the entry has no webhook_secret")
        return ResolvedContact(recipient, channel, address, secret, contact)

    def missing(self, wanted: Iterable[tuple[Recipient, ChannelKind]]) -> list[MissingContact]:
        """Every (recipient, channel) pair that cannot be resolved, for start-up checks."""
        problems: list[MissingContact] = []
        for recipient, channel in dict.fromkeys(wanted):
            try:
                self.resolve(recipient, channel)
            except MissingContact as exc:
                problems.append(exc)
        return problems


class ContactsReloader(FileReloader[ContactBook]):
    """The contact book in force, reloaded when its file changes (see FileReloader).

    No path means an empty book (only the inbox reaches anyone). A malformed file raises
    ContactsError.
    """

    def __init__(self, path: str | Path | None) -> None:
        super().__init__(path, ContactBook.load, empty=lambda: ContactBook({}))

    @property
    def book(self) -> ContactBook:
        """The contact book in force."""
        return self.value
