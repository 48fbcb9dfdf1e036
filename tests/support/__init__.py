"""What the tests share: infrastructure they own (PostgreSQL clusters, PgBouncer, a DNS
server, their fixtures) and helpers (clients and teams, races, call outcomes, the
contract's permission table, organization, invitation and change-feed helpers)."""
