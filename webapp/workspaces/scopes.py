"""Permissions as data: every permission Podium checks, the roles that grant
them, and the API key scopes that can carry them.

Terms:
- *permission*: one capability checked by views, the API and websockets
  (``members.manage``). :data:`PERMISSIONS` is the single list, with the
  description the docs and the UI show.
- *role*: a member's place in a workspace; a role is a set of permissions.
- *key scope*: what an API key may do (``invoke``, ``deploy``, ``read``,
  ``admin``); a scope is a set of permissions too.

A request by an API key may do what the key's scopes allow AND what its
creator's current role allows, so demoting a member also narrows their keys.
The one check is :func:`webapp.workspaces.access.has_perm`.
"""

from __future__ import annotations

from typing import Final

PERMISSIONS: Final[dict[str, str]] = {
    "workspace.read": "See the workspace, its settings and its members.",
    "workspace.update": "Rename the workspace and change its settings.",
    "workspace.delete": "Delete the workspace and everything in it.",
    "members.manage": "Invite members, change roles and remove members.",
    "owners.manage": "Make or unmake owners.",
    "keys.read": "See the workspace's API keys (never their secrets).",
    "keys.create": "Create API keys limited to one's own permissions.",
    "keys.manage": "Create and revoke any member's API keys.",
    "audit.read": "Read the audit log.",
    "models.read": "See models, versions, deployments, calls and logs.",
    "models.write": "Create and edit models and their code.",
    "models.deploy": "Deploy versions, move aliases and split traffic.",
    "models.invoke": "Call model endpoints.",
    "runs.execute": "Run workflows and review their results.",
}

_VIEWER = {"workspace.read", "models.read"}
_OPERATOR = _VIEWER | {"models.invoke", "runs.execute"}
_DEVELOPER = _OPERATOR | {"models.write", "models.deploy", "keys.create", "keys.read"}
_ADMIN = _DEVELOPER | {"workspace.update", "members.manage", "keys.manage", "audit.read"}
_OWNER = _ADMIN | {"workspace.delete", "owners.manage"}

ROLE_ORDER: Final[tuple[str, ...]] = ("owner", "admin", "developer", "operator", "viewer")

ROLES: Final[dict[str, frozenset[str]]] = {
    "owner": frozenset(_OWNER),
    "admin": frozenset(_ADMIN),
    "developer": frozenset(_DEVELOPER),
    "operator": frozenset(_OPERATOR),
    "viewer": frozenset(_VIEWER),
}

ROLE_DESCRIPTIONS: Final[dict[str, str]] = {
    "owner": "Everything, including deleting the workspace and managing owners.",
    "admin": "Manages members, keys and settings; sees the audit log.",
    "developer": "Writes and deploys models and workflows.",
    "operator": "Runs models and workflows and reviews results; does not edit code.",
    "viewer": "Reads everything but changes nothing.",
}

KEY_SCOPES: Final[dict[str, frozenset[str]]] = {
    "read": frozenset({"workspace.read", "models.read"}),
    "invoke": frozenset({"models.invoke", "runs.execute"}),
    "deploy": frozenset({"models.read", "models.write", "models.deploy"}),
    "admin": frozenset({"workspace.read", "members.manage", "keys.read", "keys.create", "keys.manage",
                        "audit.read", "workspace.update"}),
}

KEY_SCOPE_DESCRIPTIONS: Final[dict[str, str]] = {
    "read": "Read the workspace, models, deployments and logs.",
    "invoke": "Call model endpoints and run workflows.",
    "deploy": "Create model versions, deploy, promote and roll back.",
    "admin": "Manage members, invitations and keys; read the audit log.",
}

for _perms in (*ROLES.values(), *KEY_SCOPES.values()):
    assert _perms <= PERMISSIONS.keys(), _perms - PERMISSIONS.keys()


def role_choices() -> list[tuple[str, str]]:
    return [(role, role.capitalize()) for role in ROLE_ORDER]


def scopes_allowed_for_role(role: str) -> list[str]:
    """Key scopes a member with ``role`` may put on a key: those within the role."""
    granted = ROLES[role]
    return [scope for scope, perms in KEY_SCOPES.items() if perms <= granted]
