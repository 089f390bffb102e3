"""A real-Flux environment as one context manager.

A control plane of its own, the three controllers, an anonymous Git server, a private (basic-auth) Git server
and a Helm repository. The pytest ``flux`` fixture and the corpus recorder (``python -m testbed.corpus``) both
use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from testbed.controllers import ControllerAssets, FluxControllers, find_controllers
from testbed.controlplane import ControlPlane
from testbed.gitserver import GitServer
from testbed.helmrepo import HelmRepo

#: The private Git server's user and password (test credentials on loopback).
GIT_CREDENTIALS = ("tenant-ci", "s3cret")


@dataclass(frozen=True)
class RealFlux:
    """The real Flux controllers on their own control plane, and the servers they fetch from."""

    control_plane: ControlPlane
    controllers: FluxControllers
    #: anonymous Git smart-HTTP server
    git: GitServer
    #: Git server that requires basic auth with ``GIT_CREDENTIALS``
    git_private: GitServer
    helm: HelmRepo


@contextlib.contextmanager
def real_flux(assets: ControllerAssets | None = None) -> Iterator[RealFlux]:
    """Start everything (the controllers last, once the servers are up); stop it all in reverse order.

    Raises ControllersError or ControlPlaneError when the binaries cannot be built or started.
    """
    assets = assets or find_controllers()
    with (
        ControlPlane() as cp,
        GitServer() as git,
        GitServer(credentials=GIT_CREDENTIALS) as git_private,
        HelmRepo() as helm,
        FluxControllers(cp, assets) as controllers,
    ):
        yield RealFlux(cp, controllers, git, git_private, helm)
