"""pytest fixtures for the real-peer tests (network namespaces, wireguard-go).

Fixtures
  wg_impl          "debian" | "current": the peer's wireguard-go; tests using
                   it (directly or through overlay) run once per implementation
  overlay          an up Overlay (harness.overlay): ns A for the node, ns B with
                   a wireguard-go peer and its services; torn down afterwards
  overlay_factory  overlay_factory(**Overlay kwargs) for non-default topologies
  nginx_module     skips unless build/ngx_wgconn_module.so exists

Environment
  WGC_DEBUG=1  nginx error_log at debug
  WGC_KEEP=1   keep work dirs (/tmp/wgc-*); WGC_KEEP=failed: only of failed tests
  WGC_IMPLS=debian,current  which implementations to run (default both)
  WGC_VALGRIND=DIR  nginx under valgrind memcheck, logs DIR/vg.PID.log
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import netns as nsmod  # noqa: E402
from harness import nginx as nginxmod  # noqa: E402
from harness.netns import HarnessError  # noqa: E402
from harness.overlay import Overlay  # noqa: E402
from harness.wgpeer import impl_binary, impl_version  # noqa: E402

IMPLS = [i.strip() for i in os.environ.get("WGC_IMPLS", "debian,current")
         .split(",") if i.strip()]

MISSING_TOOLS = [t for t in ("ip", "wg", "curl", "openssl", "ping", "ss")
                 if shutil.which(t) is None]


def _environment_skip_reason():
    if os.geteuid() != 0:
        return "real-peer tests need root (network namespaces, TUN devices)"
    if MISSING_TOOLS:
        return ("missing tools %s: run scripts/test-deps.sh"
                % ", ".join(MISSING_TOOLS))
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun: wireguard-go needs a TUN device"
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long transfers (256 MiB); deselect with -m 'not slow'")
    config.addinivalue_line(
        "markers", "nginx_module: needs build/ngx_wgconn_module.so")


def pytest_sessionstart(session):
    if _environment_skip_reason() is None:
        removed = nsmod.cleanup_stale()
        if removed:
            sys.stderr.write("harness: removed stale namespaces %s\n"
                             % " ".join(removed))


def pytest_report_header(config):
    lines = ["wgc: nginx module %s (%s)" % (
        nginxmod.MODULE, "present" if nginxmod.module_available()
        else "MISSING")]
    for impl in IMPLS:
        try:
            path = impl_binary(impl, build=False)
            lines.append("wgc: wireguard-go %s: %s (%s)"
                         % (impl, path, impl_version(impl)))
        except HarnessError as e:
            lines.append("wgc: wireguard-go %s: %s" % (impl, e))
    return lines


@pytest.fixture(scope="session")
def root_env():
    reason = _environment_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session", params=IMPLS)
def wg_impl(request, root_env):
    impl = request.param
    try:
        impl_binary(impl, build=True)
    except HarnessError as e:
        if impl == "current":
            pytest.skip("current wireguard-go unavailable: %s" % e)
        raise
    return impl


@pytest.fixture
def overlay_factory(wg_impl, request):
    """Work dirs live in /tmp/wgc-* (mode 0755), not in pytest's tmp_path:
    nginx workers run as an unprivileged user and must reach their temp
    paths (/tmp/pytest-of-root is 0700).  Removed unless WGC_KEEP=1."""
    made = []

    def make(**kw):
        kw.setdefault("impl", wg_impl)
        if "workdir" not in kw:
            kw["workdir"] = tempfile.mkdtemp(prefix="wgc-")
            os.chmod(kw["workdir"], 0o755)
            dirs.append(kw["workdir"])
        ov = Overlay(**kw)
        made.append(ov)
        return ov.up()

    dirs = []
    yield make
    for ov in reversed(made):
        ov.down()
    failed = getattr(request.node, "rep_call", None)
    keep = os.environ.get("WGC_KEEP") == "1"
    for d in dirs:
        if keep or (failed is not None and failed.failed
                    and os.environ.get("WGC_KEEP") == "failed"):
            sys.stderr.write("harness: kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def overlay(overlay_factory):
    return overlay_factory()


@pytest.fixture(scope="session")
def nginx_module():
    if not nginxmod.module_available():
        pytest.skip("%s not built (run `make module`)" % nginxmod.MODULE)
    return nginxmod.MODULE
