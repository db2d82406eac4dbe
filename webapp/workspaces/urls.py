"""Page URLs: home, the workspace list, pages of one workspace under ``/w/<slug>/``, invitations.

Every view under ``/w/<slug>/`` is a :func:`webapp.workspaces.views.workspace_page`
and carries the permission of each method it accepts as ``podium_perms``.
"""

from __future__ import annotations

from django.urls import path

from webapp.workspaces import views

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces", views.workspace_list, name="workspaces"),
    path("workspaces/new", views.workspace_new, name="workspace-new"),
    path("invitations/<str:token>", views.invitation, name="invitation"),
    path("w/<slug:slug>/", views.overview, name="ws-overview"),
    path("w/<slug:slug>/members", views.members, name="ws-members"),
    path("w/<slug:slug>/members/<str:username>/role", views.member_role, name="ws-member-role"),
    path("w/<slug:slug>/members/<str:username>/remove", views.member_remove, name="ws-member-remove"),
    path("w/<slug:slug>/leave", views.leave, name="ws-leave"),
    path("w/<slug:slug>/invitations/<int:pk>/revoke", views.invitation_revoke, name="ws-invitation-revoke"),
    path("w/<slug:slug>/keys", views.keys, name="ws-keys"),
    path("w/<slug:slug>/keys/<int:pk>/revoke", views.key_revoke, name="ws-key-revoke"),
    path("w/<slug:slug>/audit", views.audit, name="ws-audit"),
    path("w/<slug:slug>/settings", views.settings_page, name="ws-settings"),
    path("w/<slug:slug>/delete", views.workspace_delete, name="ws-delete"),
]
