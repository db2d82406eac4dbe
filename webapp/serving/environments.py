"""The environment builder as the web app uses it: whose build an environment is, and what it may install.

An environment whose build ran a workspace's own code (an sdist, a package in the bundle) belongs to that
workspace alone (``sandbox.environments.EnvironmentBuilder``). The tenant is named by the workspace's
primary key, never its slug: a slug can be taken again by a new workspace after the old one is deleted.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.environments import Environment, EnvironmentBuilder, OutputCallback
from webapp.workspaces.models import Workspace


def tenant(workspace: Workspace) -> str:
    return f"w{workspace.pk}"


def lookup(requirements: str, workspace: Workspace, bundle: Path | None = None) -> Environment | None:
    """The built environment, or None. Never builds."""
    return EnvironmentBuilder().lookup(requirements, tenant=tenant(workspace), bundle=bundle)


def ensure(requirements: str, workspace: Workspace, *, bundle: Path | None = None,
           on_output: OutputCallback | None = None) -> Environment:
    """Build (in a build sandbox) or find the environment; raises ``EnvironmentBuildError`` (a
    ``RequirementRefused`` names the line) with the build's own output."""
    return EnvironmentBuilder().ensure(requirements, on_output=on_output, tenant=tenant(workspace), bundle=bundle,
                                       allow_urls=workspace.allow_outbound_network)
