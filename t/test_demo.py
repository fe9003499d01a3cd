"""`make demo` works: nginx in the root namespace reaches the demo peer."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.nginx_module
def test_demo_check(nginx_module, root_env):
    cp = subprocess.run([sys.executable, os.path.join(HERE, "harness",
                                                      "demo.py"), "--check"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout
    assert "hello from peer" in cp.stdout
