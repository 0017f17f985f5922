#!/usr/bin/env python
"""Print shell exports of the PROXMOX_* connection to the test simulator.

    eval "$("$python" ../setup_pvesim/files/pvesim_env.py CONFIG token|password [--host-port])"

``token`` logs in as the full-privilege token, ``password`` as the read-only audit user;
``--host-port`` writes the port into PROXMOX_HOST (``host:port``) instead of PROXMOX_PORT.
CONFIG is the integration_config.yml that ansible-test writes for the targets.
"""

from __future__ import annotations

import shlex
import sys

import yaml


def exports(config, login, host_port):
    env = {"PROXMOX_CA_PATH": config["pvesim_ca_path"], "PROXMOX_VALIDATE_CERTS": "true"}
    if host_port:
        env["PROXMOX_HOST"] = "%s:%s" % (config["pvesim_host"], config["pvesim_port"])
    else:
        env["PROXMOX_HOST"] = config["pvesim_host"]
        env["PROXMOX_PORT"] = config["pvesim_port"]
    if login == "token":
        env.update(PROXMOX_USER=config["pvesim_user"], PROXMOX_TOKEN_ID=config["pvesim_token_id"],
                   PROXMOX_TOKEN_SECRET=config["pvesim_token_secret"])
    elif login == "password":
        env.update(PROXMOX_USER=config["pvesim_audit_user"], PROXMOX_PASSWORD=config["pvesim_audit_password"])
    else:
        raise SystemExit("login must be token or password, not %r" % login)
    return "\n".join("export %s=%s" % (key, shlex.quote(str(value))) for key, value in sorted(env.items()))


def main(argv):
    with open(argv[1]) as handle:
        config = yaml.safe_load(handle)
    print(exports(config, argv[2], "--host-port" in argv[3:]))


if __name__ == "__main__":
    main(sys.argv)
