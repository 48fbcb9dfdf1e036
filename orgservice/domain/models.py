"""Domain objects returned by use cases and converted to protobuf by the API layer."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Generic
from typing import TypeVar

from orgservice.domain.budget import Budget

T = TypeVar("T")
# Input the API layer can only judge once the caller is authorized (a page token, an
# update mask): the use case calls it after authorizing (AIP-211).
Deferred = Callable[[], T]


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request."""

    user_id: str
    subject: str
    is_platform: bool = False
    email: str = ""
    email_verified: bool = False
    # What members are found by (username, email, display name) as the token says,
    # which is what provisioning last wrote to the user unless another token changed it.
    profile: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Call:
    """Who makes a request, and how long its work may take."""

    caller: Caller
    budget: Budget


@dataclass(frozen=True)
class Identity:
    """What a verified bearer token says about its holder."""

    subject: str
    email: str = ""
    email_verified: bool = False
    username: str = ""
    display_name: str = ""
    is_platform: bool = False

    @property
    def profile(self) -> tuple[str, str, str]:
        """What members are found by: username, email, display name."""
        return self.username, self.email, self.display_name


@dataclass(frozen=True)
class User:
    id: str
    subject: str
    username: str
    email: str
    display_name: str
    create_time: datetime


class OrganizationState(enum.Enum):
    ACTIVE = "active"
    DELETED = "deleted"


# Caller-defined organization metadata: a JSON object (google.protobuf.Struct on the wire).
Metadata = dict[str, Any]


@dataclass(frozen=True)
class OrganizationSettings:
    """Membership policies (API.md, "Domains and membership policies")."""

    auto_join_role: str = ""  # empty: no auto-join
    restrict_invitations_to_domains: bool = False
    max_members: int = 0  # 0: unlimited
    default_invitation_ttl: timedelta | None = None  # None: the service's default


@dataclass(frozen=True)
class Organization:
    id: str
    slug: str
    name: str
    description: str
    labels: dict[str, str]
    personal: bool
    state: OrganizationState
    member_count: int
    workspace_count: int
    create_time: datetime
    update_time: datetime
    delete_time: datetime | None
    purge_time: datetime | None
    etag: str
    settings: OrganizationSettings = OrganizationSettings()
    public_metadata: Metadata = field(default_factory=dict)
    # None: hidden from the caller it was read for (see OrganizationService).
    private_metadata: Metadata | None = field(default_factory=dict)


# Slugs one create may try, in order (a name's plain slug, then suffixed ones).
MAX_SLUG_CANDIDATES = 5


@dataclass(frozen=True)
class NewOrganization:
    """An organization about to be created with its built-in roles, its owner, its
    default workspace and its first audit event. It takes the first of `slugs` (at most
    MAX_SLUG_CANDIDATES) that no organization holds, and its created event names that
    slug."""

    id: str
    slugs: tuple[str, ...]
    name: str
    description: str
    labels: dict[str, str]
    personal: bool
    owner_user_id: str
    workspace_id: str
    create_time: datetime
    created_event: AuditEvent
    # The owner's profile as the caller knows it; the storage confirms it under lock.
    owner_profile: tuple[str, str, str] | None = None
    workspace_slug: str = "default"
    workspace_name: str = "Default"

    def __post_init__(self) -> None:
        if not 0 < len(self.slugs) <= MAX_SLUG_CANDIDATES:
            raise ValueError(f"1 to {MAX_SLUG_CANDIDATES} candidate slugs, not {len(self.slugs)}")

    def created_event_for(self, slug: str) -> AuditEvent:
        return replace(self.created_event, details={**self.created_event.details, "slug": slug})


@dataclass(frozen=True)
class AccessRecord:
    """One user's standing in one existing organization: its state, the user's role
    (None for non-members) and that role's permissions."""

    state: OrganizationState
    role: str | None
    permissions: frozenset[str]


@dataclass(frozen=True)
class Membership:
    organization_id: str
    slug: str
    role: str


@dataclass(frozen=True)
class PriorRequest:
    """What a caller's earlier create with the same request_id did."""

    operation: str
    request_hash: str
    resource_id: str


@dataclass(frozen=True)
class Workspace:
    id: str
    organization_id: str
    slug: str
    name: str
    description: str
    create_time: datetime
    update_time: datetime
    etag: str


@dataclass(frozen=True)
class AuditEvent:
    id: str
    organization_id: str
    actor_user_id: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, str]
    create_time: datetime
    seq: int = 0  # per organization, in commit order
    # Position in the feed of every organization; 0 until the feed has placed it.
    feed_position: int = 0


@dataclass(frozen=True)
class FeedPosition:
    """Where a change feed stands: after the event numbered `seq` of the organization,
    or, in the feed of every organization (`organization_id` empty), after the event at
    feed position `seq`."""

    organization_id: str
    seq: int

    @property
    def every_organization(self) -> bool:
        return not self.organization_id

    def after(self, event: AuditEvent) -> FeedPosition:
        """The position just after `event`, an event this feed delivered."""
        return replace(self, seq=event.feed_position if self.every_organization else event.seq)


@dataclass(frozen=True)
class Cursor:
    """Position after the last row of a page: ordering is (create_time, id)."""

    create_time: datetime
    id: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total_size: int
    next_cursor: Cursor | None = None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: Cursor | None = None


@dataclass(frozen=True)
class MetadataInput:
    """Metadata as a request sends it, with its size in binary protobuf form (the form
    its limit is defined in)."""

    document: Metadata
    encoded_bytes: int


@dataclass(frozen=True)
class SettingsChanges:
    """The settings fields an update names (`fields`), with their new values."""

    values: OrganizationSettings
    fields: frozenset[str]


@dataclass(frozen=True)
class OrganizationFields:
    """Mutable organization fields; None means "leave unchanged" on update."""

    name: str | None = None
    slug: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = field(default=None)
    settings: SettingsChanges | None = None
    public_metadata: MetadataInput | None = None
    private_metadata: MetadataInput | None = None


@dataclass(frozen=True)
class OrganizationQuery:
    """Which organizations a list returns."""

    member_user_id: str | None  # None: every organization (platform callers)
    name_filter: str = ""
    show_deleted: bool = False


@dataclass(frozen=True)
class Member:
    organization_id: str
    user: User
    role: str
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class Role:
    organization_id: str
    name: str
    description: str
    permissions: tuple[str, ...]
    built_in: bool


@dataclass(frozen=True)
class UserRef:
    """How a request names a user: exactly one of the fields is set."""

    user_id: str = ""
    username: str = ""
    email: str = ""


class InvitationState(enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Invitation:
    id: str
    organization_id: str
    email: str
    role: str
    state: InvitationState  # effective: a pending invitation past expire_time is EXPIRED
    inviter_user_id: str
    create_time: datetime
    update_time: datetime
    expire_time: datetime


@dataclass(frozen=True)
class WorkspaceFields:
    """Mutable workspace fields; None means "leave unchanged" on update."""

    name: str | None = None
    slug: str | None = None
    description: str | None = None


class DomainState(enum.Enum):
    PENDING = "pending"
    VERIFIED = "verified"


# The challenge an organization publishes in DNS to prove it controls a domain.
CHALLENGE_RECORD_PREFIX = "_orgservice-challenge."
CHALLENGE_VALUE_PREFIX = "orgservice-verification="


@dataclass(frozen=True)
class Domain:
    organization_id: str
    name: str  # lower-case ASCII (punycode) form
    state: DomainState
    token: str
    create_time: datetime
    verify_time: datetime | None

    @property
    def record_name(self) -> str:
        return CHALLENGE_RECORD_PREFIX + self.name

    @property
    def record_value(self) -> str:
        return CHALLENGE_VALUE_PREFIX + self.token
