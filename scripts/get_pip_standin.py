# Offline stand-in for ansible-test's cached get-pip script.
#
# ansible-test bootstraps pip in the virtual environments it creates by downloading a get-pip
# script; where that host cannot be reached it uses the cached copy under
# ~/.ansible/test/cache/. This stand-in installs pip from the interpreter's bundled wheel
# (ensurepip) and then installs what was asked for through the normal package index.
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null; drop it so the machine's pip configuration
# (index, certificate bundle) applies to the install below.
os.environ.pop("PIP_CONFIG_FILE", None)
# Options that only get-pip understands.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
