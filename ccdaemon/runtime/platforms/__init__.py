"""Fabric 2.5's chaincode platforms: how each language is built and what image it runs in.

Fabric builds a chaincode image in two steps (core/chaincode/platforms/*@release-2.5):
an ephemeral builder container runs ``/bin/sh -c <build script>`` with the code package
in ``/chaincode/input`` and leaves its result in ``/chaincode/output``; that output,
as ``binpackage.tar``, is then ADDed onto the runtime image by a generated Dockerfile.
This package holds the pure half of that: images, scripts, environment, the Dockerfile
and the launch arguments, per language (``platform``; ``settings`` holds what is
configured, ``scripts`` Fabric's shell scripts). Nothing here touches an engine.

Everything that reaches a shell script or a Dockerfile is either a constant, validated
against a narrow grammar, or quoted, because the package metadata that supplies the Go
path and the chaincode id come from whoever installed the package.
"""

from ccdaemon.runtime.platforms.platform import Platform, platform_for, quote_label_value
from ccdaemon.runtime.platforms.scripts import check_go_path
from ccdaemon.runtime.platforms.settings import STATIC_LDFLAGS, GolangBuild, PlatformImages

__all__ = [
    "STATIC_LDFLAGS",
    "GolangBuild",
    "Platform",
    "PlatformImages",
    "check_go_path",
    "platform_for",
    "quote_label_value",
]
