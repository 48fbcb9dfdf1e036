"""orgservice: organizations, members, roles, invitations and workspaces over gRPC."""
