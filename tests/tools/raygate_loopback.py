"""Keeps Ray Serve's gRPC servers on loopback in raygate's tests.

Ray 2.60's Serve replicas bind their inter-deployment gRPC server to "[::]:0" (all
interfaces) whatever --node-ip-address says, and Serve's gRPC proxy binds "[::]:<port>".
raygate's tests may only use loopback, so when RAYGATE_RAY_LOOPBACK_ONLY=1 is in the
environment (the e2e RayHead fixture sets it for the head and everything it starts), this
rewrites those addresses to 127.0.0.1 as the modules are imported. Peers dial a replica at
its node IP, which is 127.0.0.1 here, so nothing else changes.

Installed into the test venv's site-packages with a .pth line by tests/tools/install-ray.sh.
Without the variable it does nothing.
"""

import importlib.abc
import importlib.util
import os
import sys

_WILDCARDS = ("[::]:", "0.0.0.0:")


def _loopback(address):
    for wildcard in _WILDCARDS:
        if isinstance(address, str) and address.startswith(wildcard):
            return "127.0.0.1:" + address[len(wildcard):]
    return address


def _patch_tls_utils(module):
    original = module.add_port_to_grpc_server

    def add_port_to_grpc_server(server, address):
        return original(server, _loopback(address))

    module.add_port_to_grpc_server = add_port_to_grpc_server


def _patch_serve_default_impl(module):
    original = module.add_grpc_address

    def add_grpc_address(grpc_server, server_address):
        return original(grpc_server, _loopback(server_address))

    module.add_grpc_address = add_grpc_address


# Each is patched right after its module runs, before any other module imports its names.
_PATCHES = {
    "ray._common.tls_utils": _patch_tls_utils,
    "ray.serve._private.default_impl": _patch_serve_default_impl,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        # Let the other finders locate the module, then wrap its loader.
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch
        return spec


if os.environ.get("RAYGATE_RAY_LOOPBACK_ONLY") == "1":
    sys.meta_path.insert(0, _PatchAfterImport())
