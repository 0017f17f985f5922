# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Connection options shared by every module; names and PROXMOX_* variables as in community.proxmox.
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - One or more PVE nodes to talk to, tried in order until one answers C(GET /version).
      - Each entry is a host name or address, optionally with a port that wins over O(api_port),
        for example V(pve1), V(pve1:8006), V(10.0.0.11), V([2001:db8::1]:8006) or a bare V(2001:db8::1).
      - A single string and a comma-separated string also work.
      - A host that refuses the connection or times out is skipped; a login or permission
        failure stops at once.
      - Uses the E(PROXMOX_HOST) environment variable (comma-separated for several hosts) if not set.
    type: list
    elements: str
  api_port:
    description:
      - Port of the PVE API for entries of O(api_host) that do not name their own port.
      - Defaults to V(8006) when neither is given.
      - Uses the E(PROXMOX_PORT) environment variable if not set.
    type: int
  api_user:
    description:
      - User to log in as, with its realm, for example V(root@pam) or V(balancer@pve).
      - With an API token this is the user that owns the token, unless O(api_token_id) names it.
      - Uses the E(PROXMOX_USER) environment variable if not set.
    type: str
    default: root@pam
  api_password:
    description:
      - Password of O(api_user).
      - Give either O(api_password) or O(api_token_id) and O(api_token_secret), not both.
      - Uses the E(PROXMOX_PASSWORD) environment variable if not set.
    type: str
  api_token_id:
    description:
      - API token to log in with, either the token name (V(proxlb), owned by O(api_user)) or
        the full token id V(balancer@pve!proxlb).
      - Requires O(api_token_secret).
      - Uses the E(PROXMOX_TOKEN_ID) environment variable if not set.
    type: str
  api_token_secret:
    description:
      - Secret of the API token (the UUID PVE shows once when the token is created).
      - Requires O(api_token_id).
      - Uses the E(PROXMOX_TOKEN_SECRET) environment variable if not set.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the PVE API.
      - PVE nodes use certificates signed by the cluster's own CA; give that CA with O(ca_path)
        rather than switching verification off.
      - Uses the E(PROXMOX_VALIDATE_CERTS) environment variable if not set.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file (or directory) with the CA certificates that signed the PVE node certificates,
        for example a copy of C(/etc/pve/pve-root-ca.pem) from a node.
      - Ignored if O(validate_certs=false).
      - Uses the E(PROXMOX_CA_PATH) environment variable if not set.
    type: path
  api_timeout:
    description:
      - Seconds to wait for the connection and for each answer of the PVE API.
      - Uses the E(PROXMOX_API_TIMEOUT) environment variable if not set.
    type: int
    default: 5
requirements:
  - proxmoxer >= 2.3
  - requests
notes:
  - "The modules talk to the PVE REST API over HTTPS from the host that runs them, usually the
    controller (C(hosts: localhost) or C(delegate_to: localhost)); nothing runs on the PVE nodes."
  - "Least privilege: reading the cluster needs C(Sys.Audit) on C(/), C(VM.Audit) on C(/vms),
    C(Datastore.Audit) on C(/storage) and C(Pool.Audit) on C(/pool); moving guests also needs
    C(VM.Migrate) on C(/vms). The built-in role C(PVEAuditor) plus a role with C(VM.Migrate)
    covers this. An API token with privilege separation needs the roles granted to the token itself."
  - Reads are retried a few times on connection errors and server errors with a short back-off;
    writes are never repeated once the request may have reached PVE.
  - Secrets are never part of messages or results.
"""

    ACTIONGROUP = r"""
attributes:
  action_group:
    description: Use C(group/proxlb.balancer.proxlb) in C(module_defaults) to set the connection options once for all modules of this collection.
    support: full
    membership:
      - proxlb.balancer.proxlb
"""
