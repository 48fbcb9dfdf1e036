"""The membership policies an organization's settings impose, checked by the use cases
that add members or send invitations while they hold the organization row lock."""

from __future__ import annotations

from orgservice.domain.errors import EmailDomainNotAllowed
from orgservice.domain.errors import MemberLimitReached
from orgservice.domain.models import Organization
from orgservice.domain.validation import email_domain
from orgservice.service.ports import UnitOfWork


def has_free_seat(organization: Organization) -> bool:
    limit = organization.settings.max_members
    return limit == 0 or organization.member_count < limit


def ensure_free_seat(uow: UnitOfWork, organization_id: str) -> None:
    """Call with the organization row locked (member_count is then current), before
    adding a member: concurrent joins cannot overshoot `max_members`."""
    organization = uow.organizations.get(organization_id)
    if organization is not None and not has_free_seat(organization):
        raise MemberLimitReached(organization.settings.max_members)


def ensure_invitable(uow: UnitOfWork, organization: Organization, email: str) -> None:
    """With `restrict_invitations_to_domains`, only emails of the organization's
    VERIFIED domains may be invited."""
    if not organization.settings.restrict_invitations_to_domains:
        return
    domain = email_domain(email)
    if domain is None or uow.domains.holder(domain) != organization.id:
        raise EmailDomainNotAllowed()
